import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from hookshot_py.generic.payload import (
    MAX_FORM_FIELDS,
    MAX_JSON_DEPTH,
    MAX_XML_DEPTH,
    ContentType,
    PayloadError,
    parse_body,
)

NO_QUERY: dict[str, str] = {}


def post(content_type: str | None, raw: bytes) -> object:
    return parse_body("POST", content_type, raw, NO_QUERY)


def refused(content_type: str | None, raw: bytes) -> str:
    with pytest.raises(PayloadError) as info:
        post(content_type, raw)
    assert str(info.value) == info.value.message
    return info.value.message


# --- GET ----------------------------------------------------------------------------------------


def test_get_uses_the_query_and_ignores_the_body() -> None:
    assert parse_body("GET", "application/json", b"[1]", {"text": "hi", "a": ""}) == {"text": "hi", "a": ""}


def test_get_with_repeated_query_keys_gives_a_list() -> None:
    query = MultiDict([("a", "1"), ("b", "x"), ("a", "2"), ("a", "3")])
    assert parse_body("GET", None, b"", query) == {"a": ["1", "2", "3"], "b": "x"}


# --- empty bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain", "application/xml", "image/png"])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_empty_body_is_an_empty_object(method: str, content_type: str | None) -> None:
    assert parse_body(method, content_type, b"", NO_QUERY) == {}


# --- JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"text": "hi", "n": [1, 2.5, null, true]}', {"text": "hi", "n": [1, 2.5, None, True]}),
        (b"[1, 2]", [1, 2]),
        (b'"just a string"', "just a string"),
        (b"42", 42),
        (b"-1.5e3", -1500.0),
        (b"null", None),
    ],
)
def test_json_values_of_every_kind(raw: bytes, expected: object) -> None:
    assert post("application/json", raw) == expected


def test_json_object_keeps_key_order() -> None:
    assert list(post("application/json", b'{"z": 1, "a": 2, "m": 3}')) == ["z", "a", "m"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "content_type",
    ["application/vnd.github+json", "Application/JSON; charset=\"UTF-8\"", "application/json;charset=utf-8"],
)
def test_json_content_type_variants(content_type: str) -> None:
    assert post(content_type, b'{"a": 1}') == {"a": 1}


def test_json_with_utf8_bom() -> None:
    assert post("application/json", b'\xef\xbb\xbf{"a": "\xc3\xa9"}') == {"a": "é"}


def test_json_in_a_declared_charset() -> None:
    assert post("application/json; charset=latin-1", b'{"name": "caf\xe9"}') == {"name": "café"}


def test_bad_json_message_names_the_position() -> None:
    assert refused("application/json", b'{"a": 1 "b": 2}') == (
        "Body is not valid JSON: Expecting ',' delimiter at line 1 column 9"
    )


def test_bad_json_on_a_later_line() -> None:
    assert refused("application/json", b'{\n  "a": tru\n}') == (
        "Body is not valid JSON: Expecting value at line 2 column 8"
    )


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_not_json(constant: str) -> None:
    assert refused("application/json", f'{{"a": {constant}}}'.encode()) == (
        f"Body is not valid JSON: {constant} is not a JSON value"
    )


def test_json_that_is_not_utf8() -> None:
    assert refused("application/json", b'{"a": "\xff"}') == (
        "Body is not valid UTF-8 text: invalid start byte at byte 7"
    )


def test_json_nesting_just_within_the_limit_is_accepted() -> None:
    raw = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    data = post("application/json", raw)
    for _ in range(MAX_JSON_DEPTH - 1):
        assert isinstance(data, list) and len(data) == 1
        data = data[0]
    assert data == []


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_json_nesting_beyond_the_limit_is_refused(depth: int) -> None:
    raw = b'{"a":' * depth + b"1" + b"}" * depth
    assert refused("application/json", raw) == f"Body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels"


def test_integer_beyond_pythons_digit_limit_is_refused() -> None:
    message = refused("application/json", b"[" + b"9" * 5000 + b"]")
    assert message.startswith("Body is not valid JSON: Exceeds the limit (4300 digits)")


def test_big_integers_are_kept_exactly() -> None:
    assert post("application/json", b'{"id": 1234567890123456789012}') == {"id": 1234567890123456789012}


def test_lone_surrogates_become_replacement_characters() -> None:
    data = post("application/json", b'{"k\\udc00": ["\\ud800x", "ok \\ud83d\\ude00"]}')
    assert data == {"k\ufffd": ["\ufffdx", "ok \U0001f600"]}


# --- form ---------------------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"


def test_form_fields() -> None:
    assert post(FORM, b"text=Hello+world&username=bot%21&empty=&flag") == {
        "text": "Hello world",
        "username": "bot!",
        "empty": "",
        "flag": "",
    }


def test_form_repeated_keys_become_a_list() -> None:
    assert post(FORM, b"a=1&b=2&a=3") == {"a": ["1", "3"], "b": "2"}


def test_form_percent_encoded_utf8() -> None:
    assert post(FORM, b"text=caf%C3%A9") == {"text": "café"}


def test_form_in_a_declared_charset() -> None:
    assert post(FORM + "; charset=latin-1", b"text=caf%E9") == {"text": "café"}


def test_form_with_too_many_fields() -> None:
    raw = "&".join(f"k{i}=v" for i in range(MAX_FORM_FIELDS + 1)).encode()
    assert refused(FORM, raw) == f"Form body has more than {MAX_FORM_FIELDS} fields"


def test_form_with_exactly_the_maximum_fields() -> None:
    raw = "&".join(f"k{i}=v" for i in range(MAX_FORM_FIELDS)).encode()
    assert len(post(FORM, raw)) == MAX_FORM_FIELDS  # type: ignore[arg-type]


# --- text ---------------------------------------------------------------------------------------


def test_text_plain() -> None:
    assert post("text/plain", b"hello\nworld") == "hello\nworld"


def test_text_in_any_text_subtype() -> None:
    assert post("text/csv", b"a,b") == "a,b"


def test_text_in_a_declared_charset() -> None:
    assert post("text/plain; charset=ISO-8859-1", b"caf\xe9") == "café"
    assert post("text/plain; charset=utf-16", "héllo".encode("utf-16")) == "héllo"


def test_text_that_is_not_utf8() -> None:
    assert refused("text/plain", b"ok\xc3\x28") == "Body is not valid UTF-8 text: invalid continuation byte at byte 2"


def test_text_that_does_not_match_a_declared_charset() -> None:
    assert refused("text/plain; charset=ascii", b"caf\xe9") == (
        "Body is not valid ascii text: ordinal not in range(128) at byte 3"
    )


@pytest.mark.parametrize("charset", ["klingon-8", "zlib", "base64", "rot13"])
def test_unknown_or_non_text_charsets_are_refused(charset: str) -> None:
    assert refused(f"text/plain; charset={charset}", b"x") == f"Unsupported charset {charset!r}"


@pytest.mark.parametrize(
    "charset", ["punycode", "idna", "utf-7", "unicode-escape", "raw-unicode-escape", "uu", "utf-32", "cp037"]
)
def test_exotic_or_slow_codecs_are_refused(charset: str) -> None:
    # punycode decodes in quadratic time: 200 KB of it took 16 s on the event loop, then a 500.
    for content_type in ("text/plain", "application/json", FORM, "application/xml", "application/octet-stream"):
        assert refused(f"{content_type}; charset={charset}", b"-" + b"9" * 200_000) == (
            f"Unsupported charset {charset!r}"
        )


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("windows-1252", "café €"), ("koi8-r", "привет"), ("shift_jis", "日本語"), ("gb18030", "中文"),
        ("big5", "中文"), ("euc-kr", "한국어"), ("iso-2022-jp", "日本語"), ("UTF-16LE", "héllo"), ("US-ASCII", "ok"),
        ("macintosh", "café"), ("utf8", "é"),
    ],
)
def test_web_charsets_are_accepted(charset: str, text: str) -> None:
    assert post(f"text/plain; charset={charset}", text.encode(charset)) == text


CONTENT_TYPES = ["text/plain", "application/json", FORM, "application/xml", "application/x-unknown", None]
CHARSETS = ["utf-8", "utf-16", "latin-1", "shift_jis", "iso-2022-jp", "gb18030", "punycode", "utf-7", "bogus", None]


@given(st.sampled_from(CONTENT_TYPES), st.sampled_from(CHARSETS), st.binary(max_size=300))
@settings(max_examples=300)
def test_any_body_is_parsed_or_refused_with_a_payload_error(ctype: str | None, charset: str | None, raw: bytes) -> None:
    header = None if ctype is None else (ctype if charset is None else f"{ctype}; charset={charset}")
    try:
        post(header, raw)
    except PayloadError as e:
        assert e.message


# --- XML ----------------------------------------------------------------------------------------


def test_xml_like_xml2js() -> None:
    raw = b"""<?xml version="1.0"?>
<alert severity="high" id="7">
  <title>Disk full</title>
  <host name="db1">db1.example.org</host>
  <tag>a</tag>
  <tag>b</tag>
  <empty/>
  <blank>   </blank>
  <nested><x>1</x></nested>
</alert>"""
    assert post("application/xml", raw) == {
        "alert": {
            "$": {"severity": "high", "id": "7"},
            "title": ["Disk full"],
            "host": [{"_": "db1.example.org", "$": {"name": "db1"}}],
            "tag": ["a", "b"],
            "empty": [""],
            "blank": ["   "],
            "nested": [{"x": ["1"]}],
        }
    }


def test_xml_mixed_content_keeps_all_text() -> None:
    assert post("text/xml", b"<p>Hello <b>you</b> there</p>") == {"p": {"_": "Hello  there", "b": ["you"]}}


def test_xml_keeps_prefixes_and_namespace_attributes() -> None:
    raw = b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:x="urn:x"><x:item>1</x:item></feed>'
    assert post("application/atom+xml", raw) == {
        "feed": {"$": {"xmlns": "http://www.w3.org/2005/Atom", "xmlns:x": "urn:x"}, "x:item": ["1"]}
    }


def test_xml_cdata_and_entities_are_text() -> None:
    assert post("application/xml", b"<a><![CDATA[<b>&x]]> &amp; &#233;</a>") == {"a": "<b>&x & é"}


def test_xml_encoding_declaration_is_honoured() -> None:
    raw = b'<?xml version="1.0" encoding="ISO-8859-1"?><a>caf\xe9</a>'
    assert post("application/xml", raw) == {"a": "café"}


def test_xml_content_type_charset_wins_over_the_declaration() -> None:
    raw = '<?xml version="1.0" encoding="UTF-8"?><a>café</a>'.encode("latin-1")
    assert post("application/xml; charset=latin-1", raw) == {"a": "café"}


def test_malformed_xml_points_at_the_offending_name() -> None:
    # Column 9 is the "a" of "</a>", which closes <b>.
    assert refused("application/xml", b"<a><b></a>") == "Body is not valid XML: mismatched tag at line 1 column 9"


def test_xml_without_a_root_element() -> None:
    assert refused("application/xml", b"   ") == "Body is not valid XML: no element found at line 1 column 4"


def test_billion_laughs_is_refused() -> None:
    lols = "".join(f'<!ENTITY lol{i} "{"&lol%d;" % (i - 1) * 10}">' for i in range(1, 10))
    raw = f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{lols}]><lolz>&lol9;</lolz>'.encode()
    assert refused("application/xml", raw) == (
        "Body is not acceptable XML: DOCTYPE declarations are not allowed (entity expansion attacks)"
    )


def test_external_entities_are_refused() -> None:
    raw = b'<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><a>&xxe;</a>'
    assert refused("text/xml", raw).startswith("Body is not acceptable XML: DOCTYPE declarations are not allowed")


def test_undeclared_entity_is_an_error() -> None:
    assert refused("application/xml", b"<a>&nope;</a>") == "Body is not valid XML: undefined entity at line 1 column 4"


def test_xml_nesting_limit() -> None:
    ok = b"<a>" * MAX_XML_DEPTH + b"</a>" * MAX_XML_DEPTH
    assert isinstance(post("application/xml", ok), dict)
    deep = b"<a>" * (MAX_XML_DEPTH + 1) + b"</a>" * (MAX_XML_DEPTH + 1)
    assert refused("application/xml", deep) == (
        f"Body is not acceptable XML: elements nested deeper than {MAX_XML_DEPTH} levels"
    )


# --- missing or unknown content types -----------------------------------------------------------


def test_no_content_type_json_is_sniffed() -> None:
    assert post(None, b'{"text": "hi"}') == {"text": "hi"}


def test_no_content_type_text_falls_back_to_a_string() -> None:
    assert post(None, b"plain words") == "plain words"


def test_no_content_type_binary_is_refused() -> None:
    assert refused(None, b"\x89PNG\r\n\x1a\n\x00") == "Body has no Content-Type and is neither JSON nor UTF-8 text"


def test_unknown_type_with_text_is_accepted() -> None:
    assert post("application/octet-stream", b"[1]") == [1]
    assert post("application/octet-stream", b"hello") == "hello"


def test_unknown_binary_type_is_refused() -> None:
    assert refused("image/png", b"\x89PNG\r\n\x1a\n\x00\xff") == (
        "Unsupported content type image/png: the body is neither JSON nor text"
    )


def test_multipart_is_refused() -> None:
    assert refused("multipart/form-data; boundary=x", b"--x\r\n\r\nv\r\n--x--") == (
        "Unsupported content type multipart/form-data; send JSON, form-urlencoded, XML or text"
    )


# --- ContentType --------------------------------------------------------------------------------


def test_content_type_parsing() -> None:
    assert ContentType.parse(' Text/Plain ; format=flowed; Charset="ISO-8859-1" ') == ContentType(
        "text/plain", "ISO-8859-1"
    )
    assert ContentType.parse(None) == ContentType("", None)
    assert ContentType.parse("application/json; charset=") == ContentType("application/json", None)

"""Turn a generic webhook request into the data hookshot's transformHookData sees.

Mirrors hookshot's body parsers (xml2js for XML, urlencoded, JSON, `text/*`) and goes further:
`+json` types, JSON scalars, the web's charsets (not exotic, slow codecs), content sniffing when the type is missing or
unknown, and a precise `PayloadError` instead of a generic 400 for anything unreadable.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.parsers import expat

from hookshot_py import jsonsafe

__all__ = ["MAX_FORM_FIELDS", "MAX_JSON_DEPTH", "MAX_XML_DEPTH", "PayloadError", "parse_body"]

# body-parser's `parameterLimit` default for urlencoded bodies.
MAX_FORM_FIELDS = 1000
# Far beyond any real payload, low enough that rendering never nears Python's recursion limit.
MAX_JSON_DEPTH = 256
MAX_XML_DEPTH = 128

# The WHATWG Encoding Standard's charsets (what browsers and HTTP clients send), plus UTF-16 with
# a byte order mark and true ISO-8859-1: all decoded by CPython's C codecs in linear time. Any
# other codec is refused: some are quadratic (punycode: 200 KB took 16 s), none is a web charset.
_CHARSETS = frozenset(
    codecs.lookup(name).name
    for name in (
        "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "ascii", "iso-8859-1",
        "iso-8859-2", "iso-8859-3", "iso-8859-4", "iso-8859-5", "iso-8859-6", "iso-8859-7",
        "iso-8859-8", "iso-8859-10", "iso-8859-13", "iso-8859-14", "iso-8859-15", "iso-8859-16",
        "ibm866", "koi8-r", "koi8-u", "mac-roman", "mac-cyrillic", "cp874", "cp1250", "cp1251",
        "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "gbk", "gb2312",
        "gb18030", "big5", "euc-jp", "iso-2022-jp", "shift-jis", "euc-kr",
    )
)  # fmt: skip
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class PayloadError(ValueError):
    """The body cannot be read; `message` says why, for a 400 `HS_BAD_VALUE` answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ContentType:
    mime: str  # lower-cased `type/subtype`, "" when absent
    charset: str | None

    @classmethod
    def parse(cls, header: str | None) -> ContentType:
        if not header:
            return cls("", None)
        mime, _, params = header.partition(";")
        charset = None
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                charset = value.strip().strip('"').strip() or None
        return cls(mime.strip().lower(), charset)

    @property
    def is_json(self) -> bool:
        return self.mime == "application/json" or self.mime.endswith("+json")

    @property
    def is_xml(self) -> bool:
        # type-is patterns "*/xml" and "+xml", as hookshot's XML handler uses.
        return self.mime.endswith("/xml") or self.mime.endswith("+xml")

    @property
    def is_form(self) -> bool:
        return self.mime == "application/x-www-form-urlencoded"

    @property
    def is_text(self) -> bool:
        return self.mime.startswith("text/")


def parse_body(method: str, content_type: str | None, raw: bytes, query: Mapping[str, str]) -> object:
    """Parse a webhook request into JSON-like data (dict, list, str, int, float, bool, None).

    GET requests carry their data in the query string (the caller only accepts GET when
    `generic.enableHttpGet` is set). An empty POST/PUT body is `{}`, as with hookshot.
    Raises `PayloadError` when the body is unreadable or of an unsupported type.
    """
    if method.upper() == "GET":
        return _query_dict(query)
    if not raw:
        return {}
    ctype = ContentType.parse(content_type)
    if ctype.is_xml:
        return _parse_xml(raw, ctype.charset)
    if ctype.is_form:
        return _parse_form(raw, ctype.charset)
    if ctype.is_json:
        return _parse_json(_decode(raw, ctype.charset))
    if ctype.is_text:
        return _scrub(_decode(raw, ctype.charset))
    if ctype.mime.startswith("multipart/"):
        raise PayloadError(
            f"Unsupported content type {ctype.mime}; send JSON, form-urlencoded, XML or text"
        )
    return _sniff(raw, ctype)


def _query_dict(query: Mapping[str, str]) -> dict[str, Any]:
    items = query.items()  # a MultiDict (aiohttp's request.query) yields every repeated key
    return _collect((_scrub(k), _scrub(v)) for k, v in items)


def _collect(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Group key/value pairs like Node's querystring: a repeated key becomes a list."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key not in result:
            result[key] = value
        elif isinstance(result[key], list):
            result[key].append(value)
        else:
            result[key] = [result[key], value]
    return result


def _codec(charset: str | None) -> str:
    """The Python codec for a declared charset; `PayloadError` unless it is one we accept."""
    name = charset or "utf-8"
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        codec = ""
    if codec not in _CHARSETS:
        raise PayloadError(f"Unsupported charset {name!r}")
    return "utf-8-sig" if codec == "utf-8" else codec


def _decode(raw: bytes, charset: str | None) -> str:
    codec = _codec(charset)
    try:
        return raw.decode(codec)
    except UnicodeError as e:  # UnicodeDecodeError, or a bare UnicodeError from a stateful codec
        label = "UTF-8" if codec == "utf-8-sig" else charset
        where = f": {e.reason} at byte {e.start}" if isinstance(e, UnicodeDecodeError) else ""
        raise PayloadError(f"Body is not valid {label} text{where}") from None


def _scrub(text: str) -> str:
    """Replace lone surrogates (from `\\ud800`-style escapes), which cannot be sent as UTF-8."""
    scrubbed: str = jsonsafe.without_surrogates(text)
    return scrubbed


# --- JSON ---------------------------------------------------------------------------------------


def _parse_json(text: str) -> object:
    """`jsonsafe.loads` with generic webhooks' depth limit and wording; lone surrogates (which
    only `\\uD800`-style escapes can produce) are replaced."""
    try:
        data = jsonsafe.loads(text, max_depth=MAX_JSON_DEPTH)
    except jsonsafe.JsonError as e:
        if e.kind == "syntax":
            raise PayloadError(f"Body is not valid JSON: {e.detail} at line {e.line} column {e.column}") from None
        if e.kind == "depth":
            raise PayloadError(f"Body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels") from None
        raise PayloadError(f"Body is not valid JSON: {e.detail}") from None
    return jsonsafe.without_surrogates(data) if _SURROGATE_ESCAPE.search(text) else data


# --- form -----------------------------------------------------------------------------------


def _parse_form(raw: bytes, charset: str | None) -> dict[str, Any]:
    text = _decode(raw, charset)
    encoding = _codec(charset).removesuffix("-sig")
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding=encoding, errors="replace", max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError:
        raise PayloadError(f"Form body has more than {MAX_FORM_FIELDS} fields") from None
    return _collect((_scrub(k), _scrub(v)) for k, v in pairs)


# --- XML ------------------------------------------------------------------------------------


class _XmlRefused(Exception):
    pass


class _Xml2js:
    """Builds xml2js's default output (explicitArray, explicitRoot, `$` attributes, `_` text).

    Driven by expat directly rather than ElementTree because xml2js keeps qualified names and
    `xmlns` attributes as written, and ElementTree rewrites them to `{uri}local`.
    """

    def __init__(self) -> None:
        self.stack: list[tuple[str, dict[str, Any], list[str]]] = []
        self.result: dict[str, Any] | None = None

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if len(self.stack) >= MAX_XML_DEPTH:
            raise _XmlRefused(f"elements nested deeper than {MAX_XML_DEPTH} levels")
        node: dict[str, Any] = {}
        if attrs:
            node["$"] = {_scrub(k): _scrub(v) for k, v in attrs.items()}
        self.stack.append((_scrub(name), node, []))

    def text(self, data: str) -> None:
        if self.stack:
            self.stack[-1][2].append(data)

    def end(self, _name: str) -> None:
        name, node, chunks = self.stack.pop()
        text = _scrub("".join(chunks))
        value: Any = node
        if text.strip():
            value = {"_": text, **node} if node else text
        elif not node:
            value = text  # an empty element is its (whitespace-only) text, as in xml2js
        if self.stack:
            self.stack[-1][1].setdefault(name, []).append(value)
        else:
            self.result = {name: value}


def _refuse_doctype(*_args: object) -> None:
    raise _XmlRefused("DOCTYPE declarations are not allowed (entity expansion attacks)")


def _refuse_entity(*_args: object) -> None:
    raise _XmlRefused("ENTITY declarations are not allowed (entity expansion attacks)")


def _parse_xml(raw: bytes, charset: str | None) -> dict[str, Any]:
    builder = _Xml2js()
    if charset is not None:
        # A declared charset wins over the document's own declaration, as in express.text().
        parser = expat.ParserCreate("utf-8")
        data = _decode(raw, charset).encode("utf-8")
    else:
        parser = expat.ParserCreate()
        data = raw
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.text
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except _XmlRefused as e:
        raise PayloadError(f"Body is not acceptable XML: {e}") from None
    except expat.ExpatError as e:
        reason = expat.ErrorString(e.code)
        raise PayloadError(
            f"Body is not valid XML: {reason} at line {e.lineno} column {e.offset + 1}"
        ) from None
    if builder.result is None:
        raise PayloadError("Body is not valid XML: no root element")
    return builder.result


# --- unknown types ----------------------------------------------------------------------------


def _sniff(raw: bytes, ctype: ContentType) -> object:
    """No usable Content-Type: accept JSON, then UTF-8 (or the declared charset) text."""
    _codec(ctype.charset)  # an unsupported charset is refused as such, whatever the type
    try:
        text = _decode(raw, ctype.charset)
    except PayloadError:
        if ctype.mime:
            raise PayloadError(
                f"Unsupported content type {ctype.mime}: the body is neither JSON nor text"
            ) from None
        raise PayloadError("Body has no Content-Type and is neither JSON nor UTF-8 text") from None
    try:
        return _parse_json(text)
    except PayloadError:
        return _scrub(text)

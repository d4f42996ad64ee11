"""The declarative loader on its own, with small sections made up for the tests."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from hookshot_py.config import ConfigError, ConfigErrors, load_section
from hookshot_py.config.schema import camel, describe, join, key, secret_keys, section, suggest, yaml_fields


@dataclass
class Inner:
    name: str
    weight: float = 1.0


@dataclass
class Outer:
    title: str
    kind: str = key(if_absent="any")
    mode: Literal["fast", "slow"] = "fast"
    count: int = 0
    enabled: bool = True
    ident: int | str | None = None
    where: Path | None = None
    tags: list[str] = field(default_factory=list)
    inner: Inner | None = None
    by_name: dict[str, Inner] = field(default_factory=dict)
    raw: dict[str, Any] | None = None
    client_id: str | None = key("client_id", default=None)
    upper: str | None = key(default=None, parse=lambda v, p: str(v).upper())


def load(data: Any) -> Outer:
    return load_section(Outer, data, "sec")


def error(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(data)
    return str(info.value)


def test_yaml_names_are_camel_case_unless_spelled_out() -> None:
    assert list(yaml_fields(Outer)) == [
        "title", "kind", "mode", "count", "enabled", "ident", "where", "tags", "inner", "byName", "raw",
        "client_id", "upper",
    ]  # fmt: skip
    assert camel("allow_js_transformation_functions") == "allowJsTransformationFunctions"


def test_converts_nested_sections_and_containers() -> None:
    out = load(
        {
            "title": "t",
            "mode": "slow",
            "count": 3,
            "ident": "abc",
            "where": "a/b",
            "tags": ["x", "y"],
            "inner": {"name": "n", "weight": 2},
            "byName": {"one": {"name": "1"}},
            "raw": {"anything": [1, {"goes": None}]},
            "client_id": "c",
            "upper": "shout",
        }
    )
    assert out == Outer(
        title="t",
        mode="slow",
        count=3,
        ident="abc",
        where=Path("a/b"),
        tags=["x", "y"],
        inner=Inner("n", 2.0),
        by_name={"one": Inner("1")},
        raw={"anything": [1, {"goes": None}]},
        client_id="c",
        kind="any",
        upper="SHOUT",
    )
    assert isinstance(out.inner.weight, float)


def test_null_means_default_or_none() -> None:
    out = load({"title": "t", "count": None, "tags": None, "inner": None, "kind": None})
    assert (out.count, out.tags, out.inner, out.kind) == (0, [], None, "any")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"title": "t", "cuont": 1}, "sec.cuont: unknown key (did you mean count?)"),
        ({"title": "t", "by_name": {}}, "sec.by_name: unknown key (did you mean byName?)"),
        ({"title": "t", "CLIENTID": "x"}, "sec.CLIENTID: unknown key (did you mean client_id?)"),
        ({"title": "t", "zzz": 1}, "sec.zzz: unknown key (expected one of: title, kind, mode, count, enabled, "
                                   "ident, where, tags, inner, byName, raw, client_id, upper)"),
        ({"title": "t", 5: 1}, 'sec["5"]: keys must be strings, got 5'),
        ({}, "sec.title: required key is missing"),
        ({"title": None}, "sec.title: expected a string, got null"),
        ({"title": 5}, "sec.title: expected a string, got 5"),
        ({"title": "t", "count": True}, "sec.count: expected an integer, got true"),
        ({"title": "t", "count": 1.5}, "sec.count: expected an integer, got 1.5"),
        ({"title": "t", "enabled": 1}, "sec.enabled: expected a boolean (true or false), got 1"),
        ({"title": "t", "mode": "fats"}, 'sec.mode: expected one of "fast", "slow", got "fats" (did you mean "fast"?)'),
        ({"title": "t", "mode": "medium"}, 'sec.mode: expected one of "fast", "slow", got "medium"'),
        ({"title": "t", "ident": 1.5}, "sec.ident: expected an integer or a string, got 1.5"),
        ({"title": "t", "where": ""}, 'sec.where: expected a string, got ""'),
        ({"title": "t", "tags": "x"}, 'sec.tags: expected a list, got "x"'),
        ({"title": "t", "tags": ["x", 2]}, "sec.tags[1]: expected a string, got 2"),
        ({"title": "t", "inner": {"name": "n", "wieght": 1}}, "sec.inner.wieght: unknown key (did you mean weight?)"),
        ({"title": "t", "inner": {"weight": "heavy", "name": "n"}}, 'sec.inner.weight: expected a number, got "heavy"'),
        ({"title": "t", "byName": {"a b": {}}}, 'sec.byName["a b"].name: required key is missing'),
        ({"title": "t", "byName": {1: {"name": "x"}}}, 'sec.byName["1"]: keys must be strings, got 1'),
        ({"title": "t", "byName": []}, "sec.byName: expected a mapping, got a list"),
        ({"title": "t", "raw": "x"}, 'sec.raw: expected a mapping, got "x"'),
        ("title", 'sec: expected a mapping, got "title"'),
    ],
)  # fmt: skip
def test_errors_name_the_key_path(data: Any, message: str) -> None:
    assert error(data) == message


def test_unknown_keys_are_reported_before_missing_ones() -> None:
    assert error({"titel": "t"}) == "sec.titel: unknown key (did you mean title?)"


def test_post_load_runs_with_the_section_path() -> None:
    seen: list[str] = []

    @dataclass
    class Checked:
        value: int

        def post_load(self, path: str) -> None:
            seen.append(path)
            if self.value > 10:
                raise ConfigError(join(path, "value"), "too big")

    assert load_section(Checked, {"value": 1}, "a[0]") == Checked(1)
    assert seen == ["a[0]"]
    with pytest.raises(ConfigError, match=r"^a\[0\]\.value: too big$"):
        load_section(Checked, {"value": 11}, "a[0]")


def test_unsupported_annotation_is_a_programming_error() -> None:
    @dataclass
    class Odd:
        when: complex

    with pytest.raises(TypeError, match="unsupported type"):
        load_section(Odd, {"when": 1}, "odd")


def test_helpers() -> None:
    assert join("", "a") == "a"
    assert join("a", "b") == "a.b"
    assert join("a", 0) == "a[0]"
    assert join("a", "gitlab.com") == 'a["gitlab.com"]'
    assert describe("x" * 100).endswith('..."')
    assert describe({"a": 1}) == "a mapping"
    assert describe(object()) == "a object"
    assert suggest("url_prefix", ["urlPrefix", "userIdPrefix"]) == "urlPrefix"
    assert suggest("qqq", ["urlPrefix"]) is None


# -- several errors -------------------------------------------------------------------------------------


def test_all_errors_of_a_section_are_reported_in_order() -> None:
    with pytest.raises(ConfigErrors) as info:
        load({"title": 5, "count": "x", "tags": [1, "a", 2], "inner": {"name": 1, "weight": "w"}, "zzz": 0})
    assert str(info.value).splitlines() == [
        "sec.zzz: unknown key (expected one of: title, kind, mode, count, enabled, ident, where, tags, inner, "
        "byName, raw, client_id, upper)",
        "sec.title: expected a string, got 5",
        'sec.count: expected an integer, got "x"',
        "sec.tags[0]: expected a string, got 1",
        "sec.tags[2]: expected a string, got 2",
        "sec.inner.name: expected a string, got 1",
        'sec.inner.weight: expected a number, got "w"',
    ]
    assert info.value.path == "sec.zzz"


def test_one_error_is_a_plain_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        load({"title": 5})
    assert type(info.value) is ConfigError
    assert info.value.errors == [info.value]


def test_missing_keys_wait_while_the_mapping_has_an_unknown_key() -> None:
    @dataclass
    class Pair:
        left: str
        right: str
        size: int = 0

    with pytest.raises(ConfigError) as info:
        load_section(Pair, {"lft": "a", "size": "big"}, "p")
    assert str(info.value).splitlines() == [
        "p.lft: unknown key (did you mean left?)",
        'p.size: expected an integer, got "big"',
    ]
    with pytest.raises(ConfigError) as info:
        load_section(Pair, {"left": "a", "size": "big"}, "p")
    assert str(info.value).splitlines() == [
        "p.right: required key is missing",
        'p.size: expected an integer, got "big"',
    ]


def test_config_errors_flatten_and_need_one_error() -> None:
    a, b, c = ConfigError("a", "1"), ConfigError("b", "2"), ConfigError("c", "3")
    nested = ConfigErrors([a, ConfigErrors([b, c])])
    assert nested.errors == [a, b, c]
    assert str(nested) == "a: 1\nb: 2\nc: 3"
    with pytest.raises(ValueError):
        ConfigErrors([])


def test_post_load_waits_until_the_keys_are_valid() -> None:
    calls: list[int] = []

    @dataclass
    class Checked:
        value: int

        def post_load(self, path: str) -> None:
            calls.append(self.value)

    with pytest.raises(ConfigError):
        load_section(Checked, {"value": "x"}, "c")
    assert calls == []


# -- secrets and type checkers ------------------------------------------------------------------------------


def test_secret_keys_lists_the_secret_keys_that_are_set() -> None:
    @section
    class Creds:
        user: str
        token: str | None = key(default=None, secret=True)

    @section
    class Holder:
        main: Creds
        more: dict[str, Creds] = field(default_factory=dict)
        listed: list[Creds] = field(default_factory=list)
        password: str = key(default="", secret=True)

    holder = Holder(Creds("u", "t"), {"x.y": Creds("v"), "z": Creds("w", "t2")}, [Creds("a", "t3")])
    assert secret_keys(holder) == ["main.token", "more.z.token", "listed[0].token"]
    assert secret_keys(Holder(Creds("u"))) == []
    assert "t2" not in repr(holder)


def test_type_checkers_see_required_keys_and_types(tmp_path: Path) -> None:
    """``@section`` is a dataclass_transform and ``key()`` a field specifier: mypy knows what is required."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from hookshot_py.config import BridgeConfig, ListenerConfig, ProvisioningConfig\n"
        "BridgeConfig()\n"
        'ListenerConfig(port="9000")\n'
        'ProvisioningConfig(secret="s")\n'
        'BridgeConfig(domain="d", url="u", port=1).media_url\n'
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir=/dev/null", "--follow-imports=silent",
         "--ignore-missing-imports", "--no-error-summary", str(probe)],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [line.split(": ", 1)[1] for line in out.stdout.splitlines()]
    assert lines == [
        'error: Missing positional arguments "domain", "url", "port" in call to "BridgeConfig"  [call-arg]',
        'error: Argument "port" to "ListenerConfig" has incompatible type "str"; expected "int"  [arg-type]',
    ], out.stdout + out.stderr

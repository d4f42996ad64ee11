"""Reading a YAML file into plain data, with errors that fit on one line and name the file and position.

A key written twice in one mapping is an error: PyYAML would silently keep the last one, and the admin
would be left wondering why their first setting has no effect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hookshot_py.config.schema import ConfigError


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key; the base class reports it
                continue
            if duplicate:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given earlier in the same mapping)", mark
                )
        return super().construct_mapping(node, deep=deep)


def parse(text: str, source: str) -> Any:
    """Parse YAML text; ``source`` names it in errors (``config.yaml:3:7: ...``)."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        what = " ".join(p for p in (e.context, e.problem) if p)
        raise ConfigError(where, f"invalid YAML: {what}") from None
    except yaml.YAMLError as e:
        raise ConfigError(source, f"invalid YAML: {' '.join(str(e).split())}") from None


def read(path: Path) -> Any:
    """Read and parse a YAML file; unreadable files are a :class:`ConfigError` too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "not a UTF-8 text file") from None
    except OSError as e:
        raise ConfigError(str(path), f"cannot read the file: {e.strerror or e}") from None
    return parse(text, str(path))

"""Issue/PR label rendering: ` with labels a, b` in text, coloured spans in HTML.

Follows hookshot's `format_labels` (src/format_util.rs), with two fixes: names and descriptions
are HTML-escaped, and the text colour is chosen by the real WCAG contrast of the label colour
(hookshot's parser only ever fills the red channel).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FormattedLabels", "contrast_text_color", "format_labels"]

_HEX_RE = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


@dataclass(frozen=True)
class FormattedLabels:
    plain: str
    html: str


def _relative_luminance(rgb: tuple[int, int, int]) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_text_color(color: str) -> str | None:
    """`#000000` or `#FFFFFF`, whichever reads on a `color` background; None if unparsable."""
    match = _HEX_RE.fullmatch(color.strip())
    if match is None:
        return None
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    rgb = (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
    # Contrast ratio against black is (L + 0.05) / 0.05; hookshot's threshold is 4.5.
    return "#000000" if (_relative_luminance(rgb) + 0.05) / 0.05 > 4.5 else "#FFFFFF"


def format_labels(labels: Iterable[Mapping[str, Any]]) -> FormattedLabels:
    """Render GitHub label objects (`name`, optional `color` hex without `#`, `description`)."""
    plain: list[str] = []
    spans: list[str] = []
    for label in labels:
        name = label.get("name")
        if not isinstance(name, str):
            continue
        plain.append(name)
        attrs = ""
        color = label.get("color")
        if isinstance(color, str) and (text_color := contrast_text_color(color)) is not None:
            bg = "#" + color.strip().lstrip("#")
            attrs += f' data-mx-bg-color="{html.escape(bg)}" data-mx-color="{text_color}"'
        description = label.get("description")
        if isinstance(description, str) and description:
            attrs += f' title="{html.escape(description)}"'
        spans.append(f"<span{attrs}>{html.escape(name)}</span>")
    return FormattedLabels(plain=", ".join(plain), html=" ".join(spans))

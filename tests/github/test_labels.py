import pytest

from hookshot_py.github.labels import contrast_text_color, format_labels


@pytest.mark.parametrize(
    "color, text",
    [("ffffff", "#000000"), ("000000", "#FFFFFF"), ("#fef2c0", "#000000"), ("5319e7", "#FFFFFF"), ("fff", "#000000"),
     ("00f", "#FFFFFF")],
)
def test_contrast(color: str, text: str) -> None:
    assert contrast_text_color(color) == text


@pytest.mark.parametrize("color", ["", "12345", "gggggg", "#1234567"])
def test_bad_colours(color: str) -> None:
    assert contrast_text_color(color) is None


def test_format_labels() -> None:
    labels = format_labels(
        [
            {"name": "bug", "color": "d73a4a", "description": "Something <isn't> working"},
            {"name": "<b>x</b>", "color": "nope"},
            {"name": "plain"},
            {"color": "ffffff"},
        ]
    )
    assert labels.plain == "bug, <b>x</b>, plain"
    assert labels.html == (
        '<span data-mx-bg-color="#d73a4a" data-mx-color="#000000" title="Something &lt;isn&#x27;t&gt; working">bug</span> '
        "<span>&lt;b&gt;x&lt;/b&gt;</span> <span>plain</span>"
    )


def test_no_labels() -> None:
    assert format_labels([]).plain == "" and format_labels([]).html == ""

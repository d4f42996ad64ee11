from hookshot_py.commands.context import text_after


def test_text_after_keeps_the_text_as_typed():
    assert text_after("comment abc123 don't  merge", 2) == "don't  merge"
    assert text_after('comment abc123 "quoted, all of it"', 2) == "quoted, all of it"
    assert text_after("comment abc123 'it's'", 2) == "it's"
    assert text_after("comment abc123", 2) == ""
    assert text_after("  comment   abc123   x  ", 2) == "x"

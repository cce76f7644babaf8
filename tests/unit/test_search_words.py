"""The words of a search, one of which the trigram index looks up (docs/design.md, "Query plans")."""

from datetime import UTC, datetime, timedelta

import pytest

from taskservice.tasks import search_count_since, search_words


@pytest.mark.parametrize(("search", "words"), [
    ("invoice", ["invoice"]),
    ("acct-04242", ["acct", "04242"]),
    ("Nightly report, report job", ["Nightly", "report", "job"]),
    ("Übersicht-12", ["Übersicht"]),
    ("snake_case_name", ["snake", "case", "name"]),   # "_" is a LIKE wildcard, never in a word
    ("a_b%c", ["a_b%c"]),                              # no word of three: all of it (matched literally)
    ("ab cd", ["ab cd"]),
])
def test_words_are_runs_of_three_letters_or_digits(search, words):
    assert search_words(search) == words


@pytest.mark.parametrize("search", ["acct-04242", "x", "100% sure", "it's", "back\\slash", "ÉCOLE été"])
def test_every_word_is_part_of_the_search(search):
    """Whatever matches the search contains each word, so the index finds every match."""
    assert all(word in search for word in search_words(search))


def test_a_count_starts_where_the_page_says_the_limit_is_reached():
    """Twice the page's time per match, times the limit, before its newest match."""
    newest = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    page = [{"created_at": newest - timedelta(seconds=i), "from_newest": True} for i in range(20)]
    assert search_count_since(page, 1_001) == newest - timedelta(seconds=19) * (2 * 1_001 / 20)
    assert search_count_since([{**row, "from_newest": False} for row in page], 1_001) is None
    assert search_count_since([], 1_001) is None
    ancient = [page[0], {"created_at": datetime(1, 1, 2, tzinfo=UTC), "from_newest": True}]
    assert search_count_since(ancient, 1_001) is None   # before year 1: the whole table

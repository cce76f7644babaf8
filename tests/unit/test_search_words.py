"""The words of a search, one of which the trigram index looks up (docs/design.md, "Query plans")."""

import pytest

from taskservice.tasks import search_words


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

"""The search memo: trusted for its TTL, bounded, the least recently used forgotten first."""

import time

from taskservice.api.memo import Memo


def test_a_key_is_remembered_for_its_ttl(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    keys = Memo(ttl_seconds=10, max_entries=10)
    assert keys.get("invoice") is None
    keys.put("invoice", ("invoice", True))
    now[0] += 9.9
    assert keys.get("invoice") == ("invoice", True)
    now[0] += 0.2
    assert keys.get("invoice") is None


def test_the_least_recently_used_search_is_forgotten_first():
    keys = Memo(ttl_seconds=60, max_entries=2)
    keys.put("a", ("a", False))
    keys.put("b", ("b", False))
    assert keys.get("a") == ("a", False)  # now b is the least recently used
    keys.put("c", ("c", True))
    assert (keys.get("a"), keys.get("b"), keys.get("c")) == (("a", False), None, ("c", True))

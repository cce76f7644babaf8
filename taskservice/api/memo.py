"""What a search learned, remembered for a while per process (`Memo`), for two facts that stay
true for seconds and cost a statement each to learn again on every page of a search (a live
dashboard asks for the same search on every change, a client paging through a search asks on
every page):

- a search's index key (tasks.search_key, app key SEARCH_KEYS). The key only chooses how a
  search page and count reach their tasks: the trigram index looks up that word, and a common one
  starts with a walk of the newest tasks. Every key gives the same tasks in the same order, so a
  key some seconds old costs at most a slower plan.
- that a search matched more tasks than the count limit (app key CAPPED_SEARCHES): its total is
  then "at least the limit", not exact. Only for searches without a status or schedule filter: a
  task's text, priority and queue never change, and only retention removes tasks, so "more than
  the limit" stays true; with a status filter the matches move on as tasks run, and a deleted
  schedule lets go of its tasks, so those counts are made each time.
"""

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

# How long a fact is trusted: word frequencies among the newest tasks drift over minutes.
TTL_SECONDS = 10.0
# Searches remembered at once, the least recently used forgotten first.
MAX_SEARCHES = 1_000


class Memo(Generic[Key, Value]):
    def __init__(self, ttl_seconds: float = TTL_SECONDS, max_entries: int = MAX_SEARCHES) -> None:
        self.ttl_seconds, self.max_entries = ttl_seconds, max_entries
        self.entries: OrderedDict[Key, tuple[float, Value]] = OrderedDict()

    def get(self, key: Key) -> Value | None:
        """The value put for `key` less than the TTL ago, if any."""
        found = self.entries.get(key)
        if found is None or time.monotonic() - found[0] > self.ttl_seconds:
            return None
        self.entries.move_to_end(key)
        return found[1]

    def put(self, key: Key, value: Value) -> None:
        self.entries[key] = (time.monotonic(), value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

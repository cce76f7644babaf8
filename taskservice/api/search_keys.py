"""Each search's index key (tasks.search_key), remembered for a while per process.

The key only chooses how a search page and count reach their tasks: the trigram index looks
up that word, and a common one starts with a walk of the newest tasks. Every key gives the
same tasks in the same order, so a key some seconds old costs at most a slower plan, while
looking it up again costs a statement over the newest tasks on every page of a search (and
a live dashboard asks for the same search on every change).
"""

import time
from collections import OrderedDict

# How long a key is trusted: word frequencies among the newest tasks drift over minutes.
TTL_SECONDS = 10.0
# Searches remembered at once, the least recently used forgotten first.
MAX_SEARCHES = 1_000


class SearchKeys:
    def __init__(self, ttl_seconds: float = TTL_SECONDS, max_searches: int = MAX_SEARCHES) -> None:
        self.ttl_seconds, self.max_searches = ttl_seconds, max_searches
        self.keys: OrderedDict[str, tuple[float, tuple[str, bool]]] = OrderedDict()

    def get(self, search: str) -> tuple[str, bool] | None:
        """search_key's (key, common) for `search`, if looked up less than the TTL ago."""
        found = self.keys.get(search)
        if found is None or time.monotonic() - found[0] > self.ttl_seconds:
            return None
        self.keys.move_to_end(search)
        return found[1]

    def put(self, search: str, key: tuple[str, bool]) -> None:
        self.keys[search] = (time.monotonic(), key)
        self.keys.move_to_end(search)
        while len(self.keys) > self.max_searches:
            self.keys.popitem(last=False)

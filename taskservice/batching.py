"""Group writes: concurrent callers' items written together, in one statement per batch.

While `writers` batches are being written, the items submitted meanwhile wait and form
the next one; an item submitted while a writer is free is written on the next turn of the
event loop, together with whatever else arrived in that turn. So a busy process writes a
handful of items per round trip and commit, and an idle one adds no delay.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    def __init__(self, write: Callable[[list[Item]], Awaitable[Sequence[Result]]], max_size: int,
                 writers: int = 1, split: Callable[[Exception], bool] = lambda exc: True) -> None:
        """`write(items)` returns one result per item, in order. At most `writers` batches are
        written at once. When a batch raises an error that `split` accepts, each item is written
        again on its own; else every caller of that batch raises it."""
        self.write = write
        self.max_size = max_size
        self.max_writers = writers
        self.split = split
        self.waiting: list[tuple[Item, asyncio.Future]] = []
        self.writers: set[asyncio.Task] = set()

    async def submit(self, item: Item) -> Result:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        # The first item waiting: a free writer takes it (and those joining it meanwhile); else a
        # busy writer takes them all when its batch is written.
        if len(self.writers) < self.max_writers and len(self.waiting) == 1:
            self.writers.add(asyncio.create_task(self.write_waiting()))
        return await future

    async def write_waiting(self) -> None:
        batch: list[tuple[Item, asyncio.Future]] = []
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:self.max_size], self.waiting[self.max_size:]
                if self.waiting and len(self.writers) < self.max_writers:  # more than one batch
                    self.writers.add(asyncio.create_task(self.write_waiting()))
                await self.write_batch(batch)
                batch = []
        finally:
            # At once, not in a done callback: a submit in between would count this writer as busy.
            self.writers.discard(asyncio.current_task())
            for _, future in batch:  # only when this task itself was cancelled mid-write
                future.cancel()

    async def write_batch(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        """Write `batch` and settle its futures. If it fails, each item is written on its own
        (one bad item, or a deadlock, must not fail its neighbours); a lone item's error is its
        caller's."""
        try:
            results = await self.write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) > 1 and self.split(exc):
                for one in batch:
                    await self.write_batch([one])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # (its caller may have been cancelled)
                future.set_result(result)

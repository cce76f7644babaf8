"""Group writes: concurrent callers' items written together, in one statement per batch.

While one batch is being written, the items submitted meanwhile wait and form the next
one; an item submitted to an idle batcher is written on the next turn of the event loop,
together with whatever else arrived in that turn. So a busy worker writes a handful of
tasks per round trip and commit, and an idle one adds no delay.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    def __init__(self, write: Callable[[list[Item]], Awaitable[Sequence[Result]]], max_size: int) -> None:
        """`write(items)` returns one result per item, in order; what it raises, every caller
        of that batch raises."""
        self.write = write
        self.max_size = max_size
        self.waiting: list[tuple[Item, asyncio.Future]] = []
        self.writer: asyncio.Task | None = None

    async def submit(self, item: Item) -> Result:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        if self.writer is None:
            self.writer = asyncio.create_task(self.write_waiting())
        return await future

    async def write_waiting(self) -> None:
        batch: list[tuple[Item, asyncio.Future]] = []
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:self.max_size], self.waiting[self.max_size:]
                await self.write_batch(batch)
                batch = []
        finally:
            self.writer = None
            for _, future in batch:  # only when this task itself was cancelled mid-write
                future.cancel()

    async def write_batch(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        """Write `batch` and settle its futures. If it fails, each item is written on its own
        (one bad item, or a deadlock, must not fail its neighbours); a lone item's error is its
        caller's."""
        try:
            results = await self.write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) > 1:
                for one in batch:
                    await self.write_batch([one])
                return
            _, future = batch[0]
            if not future.done():
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # (its caller may have been cancelled)
                future.set_result(result)

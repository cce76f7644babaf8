"""The handoff's bookkeeping (taskservice.handoff), without services: which creates lease their
rows, and that every row handed over is published, one publish at a time."""

import asyncio

from taskservice import handoff as handoff_module
from taskservice.handoff import Handoff, Marks


def created(n: int, leased: bool = True) -> dict:
    return {"id": f"task-{n}", "outbox_id": n, "priority": "MEDIUM", "queue": "default", "leased": leased}


async def test_creates_lease_only_while_the_dispatcher_is_open_and_no_publish_is_under_way():
    release, published = asyncio.Event(), []

    async def publish(rows):
        published.append([row["task_id"] for row in rows])
        await release.wait()

    handoff = Handoff()
    assert handoff.lease() is None  # no dispatcher takes rows
    handoff.open(30.0, publish)
    assert handoff.lease() == 30.0
    handoff.give([created(1), created(2, leased=False), None])
    assert handoff.lease() is None  # busy: the next creates go to the claim
    await asyncio.sleep(0)
    handoff.give([created(3)])  # a create that leased before the publish began
    await asyncio.sleep(0)
    assert published == [["task-1"]]
    release.set()
    await handoff.close()
    assert published == [["task-1"], ["task-3"]]
    assert handoff.lease() is None


async def test_a_failed_publish_does_not_stop_the_next():
    published = []

    async def publish(rows):
        published.append([row["task_id"] for row in rows])
        if len(published) == 1:
            raise RuntimeError("broken")

    handoff = Handoff()
    handoff.open(30.0, publish)
    handoff.give([created(1)])
    await asyncio.sleep(0)
    handoff.give([created(2)])
    await handoff.close()
    assert published == [["task-1"], ["task-2"]]


async def test_confirmed_rows_are_marked_together_after_the_delay_or_at_once_on_close(monkeypatch):
    monkeypatch.setattr(handoff_module, "MARK_DELAY_SECONDS", 0.05)
    marked = []

    async def mark(rows):
        marked.append([row["id"] for row in rows])
        if rows[0]["id"] == 3:
            raise RuntimeError("a mark that fails is logged; the next ones still go")

    marks = Marks(mark)
    marks.add([{"id": 1}])
    await asyncio.sleep(0.01)
    marks.add([{"id": 2}])
    assert marked == []  # waiting: the claim and the completion of these tasks go first
    await asyncio.sleep(0.1)
    assert marked == [[1, 2]]
    marks.add([{"id": 3}])
    await asyncio.sleep(0.1)
    marks.add([{"id": 4}])
    await marks.close()  # a stopping dispatcher: no waiting
    assert marked == [[1, 2], [3], [4]]

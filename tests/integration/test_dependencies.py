"""Dependencies: a task waits (NEW, no due outbox row) until its parents are COMPLETED, is released in
the transaction of the last parent's completion, is cancelled with its descendants when a parent fails,
and comes back when that parent is retried; batches name earlier items by `ref`."""

import uuid

from taskservice import dispatcher, tasks, worker
from tests.support.execution import wait_for_status

TASKS = "/api/v1/tasks/"
BATCH = "/api/v1/tasks/batch"


async def create(client, **body) -> dict:
    resp = await client.post(TASKS, json={"name": "dep", **body})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def batch(client, items: list[dict]) -> list[dict]:
    resp = await client.post(BATCH, json={"tasks": items})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["items"]


async def due_outbox_rows(pool, task_id) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM outbox WHERE task_id = $1 AND available_at <= now()",
                                   uuid.UUID(str(task_id)))


async def complete_by_hand(pool, task_id) -> None:
    """What the worker does: claim, then complete (one UPDATE, the trigger in its transaction)."""
    async with pool.acquire() as conn:
        outbox_id = await conn.fetchval("SELECT max(id) FROM outbox WHERE task_id = $1", task_id)
        [claimed] = await tasks.claim(conn, [(task_id, outbox_id)], "w", 60)
        assert claimed is not None
        [done] = await tasks.complete(conn, [(task_id, claimed["attempts"], {"n": 1})], "w")
        assert done is not None


async def fail_by_hand(pool, task_id) -> None:
    async with pool.acquire() as conn:
        outbox_id = await conn.fetchval("SELECT max(id) FROM outbox WHERE task_id = $1", task_id)
        [claimed] = await tasks.claim(conn, [(task_id, outbox_id)], "w", 60)
        assert await tasks.fail_attempt(conn, task_id, claimed["attempts"], "w", "boom", 0, False) is not None


async def test_a_child_waits_then_is_released_in_the_transaction_of_its_parents_completion(client, pool):
    parent = await create(client)
    child = await create(client, depends_on=[parent["id"]])
    assert child["status"] == "NEW" and child["waiting_on"] == 1 and child["depends_on"] == [parent["id"]]
    assert await due_outbox_rows(pool, child["id"]) == 0
    listed = await (await client.get(TASKS, params={"waiting": "true"})).json()
    assert child["id"] in [t["id"] for t in listed["items"]] and parent["id"] not in [t["id"] for t in listed["items"]]
    dependents = await (await client.get(f"{TASKS}{parent['id']}/dependents")).json()
    assert dependents["items"] == [child["id"]]
    await complete_by_hand(pool, uuid.UUID(parent["id"]))
    # Committed together: once the parent reads COMPLETED, the child's row is due.
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT p.status, c.waiting_on, (SELECT count(*) FROM outbox o WHERE o.task_id = c.id "
            "AND o.available_at <= now()) AS due FROM tasks p, tasks c WHERE p.id = $1 AND c.id = $2",
            uuid.UUID(parent["id"]), uuid.UUID(child["id"]))
    assert (row["status"], row["waiting_on"], row["due"]) == ("COMPLETED", 0, 1)


async def test_a_child_of_a_completed_parent_is_due_at_once_and_of_a_failed_one_cancelled(client, pool):
    done, failed = await create(client), await create(client)
    await complete_by_hand(pool, uuid.UUID(done["id"]))
    await fail_by_hand(pool, uuid.UUID(failed["id"]))
    child = await create(client, depends_on=[done["id"]])
    assert child["status"] == "NEW" and child["waiting_on"] == 0
    assert await due_outbox_rows(pool, child["id"]) == 1
    doomed = await create(client, depends_on=[done["id"], failed["id"]])
    assert doomed["status"] == "CANCELLED" and doomed["error"] == f"parent {failed['id']} FAILED"
    assert await due_outbox_rows(pool, doomed["id"]) == 0


async def test_unknown_parents_and_bad_refs_are_422_and_write_nothing(client, pool):
    parent = await create(client)
    unknown = str(uuid.uuid4())
    resp = await client.post(TASKS, json={"name": "x", "depends_on": [parent["id"], unknown]})
    assert resp.status == 422 and list((await resp.json())["errors"]) == ["depends_on.1"]
    resp = await client.post(TASKS, json={"name": "x", "depends_on": ["nope"]})
    assert resp.status == 422 and "depends_on.0" in (await resp.json())["errors"]
    name = f"refs-{uuid.uuid4()}"
    cases = [
        ([{"name": name, "depends_on": ["later"]}, {"name": name, "ref": "later"}], "tasks.0.depends_on"),
        ([{"name": name, "ref": "me", "depends_on": ["me"]}], "tasks.0.depends_on"),
        ([{"name": name}, {"name": name, "depends_on": ["nothing"]}], "tasks.1.depends_on"),
        ([{"name": name, "ref": "a"}, {"name": name, "ref": "a"}], "tasks.1.ref"),
        ([{"name": name}, {"name": name, "depends_on": [unknown]}], "tasks.1.depends_on"),
    ]
    for items, key in cases:
        resp = await client.post(BATCH, json={"tasks": items})
        assert resp.status == 422, items
        assert key in (await resp.json())["errors"], (items, await resp.json())
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE name IN ('x', $1)", name) == 0


async def test_a_failed_parent_cancels_the_subtree_and_its_retry_restores_it(client, pool):
    parent, child, grandchild, user_cancelled = await batch(client, [
        {"name": "a", "ref": "a"},
        {"name": "b", "ref": "b", "depends_on": ["a"]},
        {"name": "c", "depends_on": ["b"]},
        {"name": "d", "ref": "d", "depends_on": ["a"]},
    ])
    assert [t["status"] for t in (parent, child, grandchild)] == ["NEW"] * 3
    assert grandchild["depends_on"] == [child["id"]] and child["waiting_on"] == 1
    assert (await client.delete(f"{TASKS}{user_cancelled['id']}")).status == 200
    await fail_by_hand(pool, uuid.UUID(parent["id"]))
    rows = await wait_for_status(pool, [uuid.UUID(t["id"]) for t in (child, grandchild)], "CANCELLED", timeout=1)
    assert rows[uuid.UUID(child["id"])]["error"] == f"parent {parent['id']} FAILED"
    assert rows[uuid.UUID(grandchild["id"])]["error"] == f"parent {child['id']} CANCELLED"
    resp = await client.post(f"{TASKS}{parent['id']}/retry")
    assert resp.status == 200 and (await resp.json())["status"] == "PENDING"
    rows = await wait_for_status(pool, [uuid.UUID(t["id"]) for t in (child, grandchild)], "NEW", timeout=1)
    assert all(row["error"] is None and row["waiting_on"] == 1 for row in rows.values())
    assert (await (await client.get(f"{TASKS}{user_cancelled['id']}")).json())["status"] == "CANCELLED"
    assert await due_outbox_rows(pool, child["id"]) == 0
    await complete_by_hand(pool, uuid.UUID(parent["id"]))
    await complete_by_hand(pool, uuid.UUID(child["id"]))
    assert await due_outbox_rows(pool, grandchild["id"]) == 1


async def test_a_chain_runs_in_order_and_a_fan_in_sees_every_parent_result(client, pool, running):
    running(dispatcher.main)
    running(worker.main)
    first = await create(client, kind="sleep", payload={"seconds": 0.2})
    second = await create(client, kind="count_parent_results", depends_on=[first["id"]])
    items = await batch(client, [
        {"name": "root", "ref": "root", "kind": "noop"},
        *({"name": f"fan-{i}", "ref": f"fan-{i}", "kind": "count_parent_results", "depends_on": ["root"]}
          for i in range(50)),
        {"name": "join", "kind": "count_parent_results", "depends_on": [f"fan-{i}" for i in range(50)]},
    ])
    assert items[-1]["waiting_on"] == 50 and len(items[-1]["depends_on"]) == 50
    ids = [uuid.UUID(t["id"]) for t in (first, second, *items)]
    rows = await wait_for_status(pool, ids, "COMPLETED", timeout=60)
    assert rows[uuid.UUID(second["id"])]["started_at"] >= rows[uuid.UUID(first["id"])]["finished_at"]
    assert rows[uuid.UUID(second["id"])]["result"] == 1
    # Each fan-out task saw the root's result (null); the join saw all 50 (each 1).
    assert {rows[uuid.UUID(t["id"])]["result"] for t in items[1:-1]} == {1}
    assert rows[uuid.UUID(items[-1]["id"])]["result"] == {"parents": 50, "sum": 50}

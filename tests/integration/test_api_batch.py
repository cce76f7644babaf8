"""POST /api/v1/tasks/batch against the real PostgreSQL (and RabbitMQ, for the run to COMPLETED):
all or nothing, request order, idempotency of the batch and of its items, limits, metrics."""

import asyncio
import dataclasses
import gzip
import uuid

import orjson
from prometheus_client import REGISTRY

from taskservice import dispatcher, maintenance, worker
from taskservice.api.app import create_app
from tests.support.execution import wait_for_status

BATCH = "/api/v1/tasks/batch"
TASKS = "/api/v1/tasks/"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def count_named(pool, prefix: str) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM tasks WHERE name LIKE $1 || '%'", prefix)


def created_total(priority: str) -> float:
    return REGISTRY.get_sample_value("taskservice_tasks_created_total", {"priority": priority}) or 0.0


async def test_a_batch_creates_its_tasks_in_request_order_each_like_a_single_create(client, pool):
    prefix = unique("order")
    body = {"tasks": [{"name": f"{prefix}-{i}", "priority": ("LOW", "MEDIUM", "HIGH")[i % 3],
                       "payload": {"i": i}, "kind": "echo", "max_attempts": 1 + i % 5} for i in range(30)]}
    resp = await client.post(BATCH, json=body)
    assert resp.status == 201, await resp.text()
    items = (await resp.json())["items"]
    assert [t["name"] for t in items] == [f"{prefix}-{i}" for i in range(30)]
    assert [t["payload"] for t in items] == [{"i": i} for i in range(30)]
    assert [t["max_attempts"] for t in items] == [1 + i % 5 for i in range(30)]
    assert all(t["status"] == "NEW" and t["kind"] == "echo" and t["timeout_seconds"] == 300 for t in items)
    # Each item is exactly what GET shows for it.
    for task in items[:3]:
        assert await (await client.get(f"/api/v1/tasks/{task['id']}")).json() == task
    ids = [uuid.UUID(t["id"]) for t in items]
    async with pool.acquire() as conn:
        events = await conn.fetch("SELECT task_id, from_status, status FROM task_events WHERE task_id = ANY($1)", ids)
        outbox = await conn.fetch("SELECT task_id, priority FROM outbox WHERE task_id = ANY($1)", ids)
    # The stream's events come from the triggers: one NEW event per task, one outbox row per task.
    assert sorted(e["task_id"] for e in events) == sorted(ids)
    assert {(e["from_status"], e["status"]) for e in events} == {(None, "NEW")}
    assert {(o["task_id"], o["priority"]) for o in outbox} == {(uuid.UUID(t["id"]), t["priority"]) for t in items}


async def test_a_batch_moves_the_counters_and_the_created_metric(client):
    before = (await (await client.get("/api/v1/stats")).json())["counts"]["NEW"]
    metric_before = {p: created_total(p) for p in ("LOW", "HIGH")}
    body = {"tasks": [{"name": "counted", "priority": "HIGH"}] * 3 + [{"name": "counted", "priority": "LOW"}] * 2}
    assert (await client.post(BATCH, json=body)).status == 201
    after = (await (await client.get("/api/v1/stats")).json())["counts"]["NEW"]
    assert after["HIGH"] - before["HIGH"] == 3 and after["LOW"] - before["LOW"] == 2
    assert created_total("HIGH") - metric_before["HIGH"] == 3
    assert created_total("LOW") - metric_before["LOW"] == 2


async def test_a_thousand_tasks_commit_together(client, pool):
    prefix = unique("thousand")
    resp = await client.post(BATCH, json={"tasks": [{"name": f"{prefix}-{i}"} for i in range(1000)]})
    assert resp.status == 201
    assert len((await resp.json())["items"]) == 1000
    assert await count_named(pool, prefix) == 1000


async def test_one_bad_item_of_a_thousand_writes_nothing_and_is_named(client, pool):
    prefix = unique("atomic")
    body = {"tasks": [{"name": f"{prefix}-{i}"} for i in range(1000)]}
    body["tasks"][999]["max_attempts"] = 99
    resp = await client.post(BATCH, json=body)
    assert resp.status == 422
    problem = await resp.json()
    assert list(problem["errors"]) == ["tasks.999.max_attempts"]
    assert "tasks.999.max_attempts" in problem["detail"]
    assert await count_named(pool, prefix) == 0


async def test_errors_name_every_bad_item_and_field(client):
    body = {"tasks": [{"name": "ok"}, {"name": ""}, {"priority": "URGENT", "name": "x"}, {"payload": []}]}
    resp = await client.post(BATCH, json=body)
    assert resp.status == 422
    assert set((await resp.json())["errors"]) == {"tasks.1.name", "tasks.2.priority", "tasks.3.name",
                                                  "tasks.3.payload"}


async def test_an_empty_or_missing_list_is_422(client):
    for body in ({"tasks": []}, {}, {"tasks": {"name": "x"}}, {"tasks": ["x"]}):
        resp = await client.post(BATCH, json=body)
        assert resp.status == 422, body
        assert any(field.startswith("tasks") for field in (await resp.json())["errors"]), body


async def test_more_than_batch_max_tasks_is_422_and_writes_nothing(aiohttp_client, settings, pool):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, batch_max_tasks=5)))
    prefix = unique("toomany")
    resp = await client.post(BATCH, json={"tasks": [{"name": prefix}] * 6})
    assert resp.status == 422
    assert list((await resp.json())["errors"]) == ["tasks"]
    assert (await client.post(BATCH, json={"tasks": [{"name": prefix}] * 5})).status == 201
    assert await count_named(pool, prefix) == 5


async def test_the_body_limit_scales_with_batch_max_tasks(aiohttp_client, settings):
    # MAX_BODY_BYTES 1 KiB, 4 tasks: the batch body may take 4 x 8 KiB, a single create 1 KiB.
    client = await aiohttp_client(create_app(dataclasses.replace(settings, max_body_bytes=1024, batch_max_tasks=4)))
    task = {"name": "big", "description": "d" * 3000}
    assert (await client.post(TASKS, json=task)).status == 413
    resp = await client.post(BATCH, json={"tasks": [task] * 4})
    assert resp.status == 201, await resp.text()
    resp = await client.post(BATCH, json={"tasks": [{"name": "big", "description": "d" * 9000}] * 4})
    assert resp.status == 413
    # Compressed, the decoded size counts.
    body = gzip.compress(orjson.dumps({"tasks": [{"name": "big", "description": "d" * 9000}] * 4}))
    resp = await client.post(BATCH, data=body, headers={"Content-Type": "application/json",
                                                        "Content-Encoding": "gzip"})
    assert resp.status == 413
    # The spec states each route's limit.
    spec = await (await client.get("/api/docs/swagger.json")).json()
    assert spec["paths"][BATCH]["post"]["requestBody"]["x-max-bytes"] == 4 * 8 * 1024
    assert spec["paths"][TASKS]["post"]["requestBody"]["x-max-bytes"] == 1024


async def test_the_same_key_and_body_replays_the_same_tasks(client, pool):
    prefix = unique("replay")
    body = {"tasks": [{"name": f"{prefix}-{i}"} for i in range(5)]}
    headers = {"Idempotency-Key": unique("batch-key")}
    first = await client.post(BATCH, json=body, headers=headers)
    assert first.status == 201
    again = await client.post(BATCH, json=body, headers=headers)
    assert again.status == 200
    first_items, again_items = (await first.json())["items"], (await again.json())["items"]
    assert [t["id"] for t in again_items] == [t["id"] for t in first_items]
    assert await count_named(pool, prefix) == 5


async def test_the_same_key_with_another_body_is_409_and_writes_nothing(client, pool):
    prefix = unique("conflict")
    headers = {"Idempotency-Key": unique("batch-key")}
    assert (await client.post(BATCH, json={"tasks": [{"name": f"{prefix}-a"}]}, headers=headers)).status == 201
    resp = await client.post(BATCH, json={"tasks": [{"name": f"{prefix}-b"}]}, headers=headers)
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert await count_named(pool, prefix) == 1


async def test_twenty_racing_batches_with_one_key_create_one_batch(client, pool):
    prefix = unique("race")
    body = {"tasks": [{"name": f"{prefix}-{i}"} for i in range(50)]}
    headers = {"Idempotency-Key": unique("batch-key")}
    responses = await asyncio.gather(*(client.post(BATCH, json=body, headers=headers) for _ in range(20)))
    assert sorted(r.status for r in responses) == [200] * 19 + [201]
    id_lists = {tuple(t["id"] for t in (await r.json())["items"]) for r in responses}
    assert len(id_lists) == 1
    assert await count_named(pool, prefix) == 50


async def test_an_expired_batch_key_creates_a_new_batch(client, pool):
    key = unique("batch-key")
    body = {"tasks": [{"name": unique("expired")}]}
    first = (await (await client.post(BATCH, json=body, headers={"Idempotency-Key": key})).json())["items"]
    async with pool.acquire() as conn:
        await conn.execute("UPDATE task_batches SET created_at = now() - interval '25 hours' "
                           "WHERE idempotency_key = $1", key)
    resp = await client.post(BATCH, json=body, headers={"Idempotency-Key": key})
    assert resp.status == 201
    second = (await resp.json())["items"]
    assert second[0]["id"] != first[0]["id"]
    replay = await client.post(BATCH, json=body, headers={"Idempotency-Key": key})
    assert replay.status == 200 and (await replay.json())["items"][0]["id"] == second[0]["id"]


async def test_items_whose_key_exists_return_the_existing_task(client, pool):
    prefix = unique("items")
    key = unique("item-key")
    single = await client.post(TASKS, json={"name": f"{prefix}-known"}, headers={"Idempotency-Key": key})
    assert single.status == 201
    known = await single.json()
    body = {"tasks": [{"name": f"{prefix}-new-1"}, {"name": f"{prefix}-known", "idempotency_key": key},
                      {"name": f"{prefix}-new-2", "idempotency_key": unique("item-key")}]}
    resp = await client.post(BATCH, json=body)
    assert resp.status == 201
    items = (await resp.json())["items"]
    assert items[1] == known
    assert [t["name"] for t in items] == [f"{prefix}-new-1", f"{prefix}-known", f"{prefix}-new-2"]
    assert await count_named(pool, prefix) == 3
    # The retry of the whole (unkeyed) batch makes new tasks only for the unkeyed item.
    again = (await (await client.post(BATCH, json=body)).json())["items"]
    assert again[1]["id"] == known["id"] and again[2]["id"] == items[2]["id"] and again[0]["id"] != items[0]["id"]
    assert await count_named(pool, prefix) == 4


async def test_an_item_key_used_with_another_body_is_409_and_writes_nothing(client, pool):
    prefix = unique("itemconflict")
    key = unique("item-key")
    assert (await client.post(TASKS, json={"name": f"{prefix}-a"}, headers={"Idempotency-Key": key})).status == 201
    body = {"tasks": [{"name": f"{prefix}-new"}, {"name": f"{prefix}-b", "idempotency_key": key}]}
    resp = await client.post(BATCH, json=body)
    assert resp.status == 409
    assert "tasks.1" in (await resp.json())["detail"]
    assert await count_named(pool, prefix) == 1


async def test_a_key_repeated_within_a_batch_is_422(client, pool):
    prefix = unique("dupkey")
    body = {"tasks": [{"name": prefix, "idempotency_key": "same"}, {"name": prefix},
                      {"name": prefix, "idempotency_key": "same"}]}
    resp = await client.post(BATCH, json=body)
    assert resp.status == 422
    assert list((await resp.json())["errors"]) == ["tasks.2.idempotency_key"]
    assert await count_named(pool, prefix) == 0


async def test_a_batchs_tasks_run_to_completed(client, pool, running):
    running(dispatcher.main)
    running(worker.main)
    resp = await client.post(BATCH, json={"tasks": [{"name": f"run-{i}", "kind": "echo", "payload": {"i": i}}
                                                    for i in range(40)]})
    assert resp.status == 201
    items = (await resp.json())["items"]
    rows = await wait_for_status(pool, [t["id"] for t in items], "COMPLETED", timeout=60)
    assert {rows[uuid.UUID(t["id"])]["result"]["payload"]["i"] for t in items} == set(range(40))


async def test_maintenance_deletes_expired_batch_keys(client, pool, settings):
    key = unique("batch-key")
    resp = await client.post(BATCH, json={"tasks": [{"name": "kept"}]}, headers={"Idempotency-Key": key})
    assert resp.status == 201
    async with pool.acquire() as conn:
        await conn.execute("UPDATE task_batches SET created_at = now() - interval '25 hours' "
                           "WHERE idempotency_key = $1", key)
    done = await maintenance.maintain_once(pool, settings)
    assert done["idempotency_keys"] >= 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM task_batches WHERE idempotency_key = $1", key) == 0


async def test_other_methods_on_the_batch_path_are_405(client):
    for method in ("GET", "DELETE", "PUT"):
        resp = await client.request(method, BATCH)
        assert resp.status == 405, method
        assert resp.headers["Allow"] == "POST"
        assert resp.content_type == "application/problem+json"


async def test_batch_items_carry_callback_urls_checked_like_a_single_create(client, pool):
    prefix = unique("hooks")
    refused = {"tasks": [{"name": f"{prefix}-0", "callback_url": "https://93.184.215.14/h"},
                         {"name": f"{prefix}-1", "callback_url": "http://127.0.0.1:9/h"}]}
    resp = await client.post(BATCH, json=refused)
    assert resp.status == 422
    assert list((await resp.json())["errors"]) == ["tasks.1.callback_url"]
    assert await count_named(pool, prefix) == 0
    resp = await client.post(BATCH, json={"tasks": [refused["tasks"][0], {"name": f"{prefix}-2"}]})
    assert resp.status == 201, await resp.text()
    assert [t["callback_url"] for t in (await resp.json())["items"]] == ["https://93.184.215.14/h", None]

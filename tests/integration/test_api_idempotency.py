"""Idempotency keys expire after IDEMPOTENCY_TTL_SECONDS, whether or not maintenance has run."""

import asyncio
import dataclasses

from taskservice import maintenance
from taskservice.api.app import create_app

TASKS = "/api/v1/tasks/"


async def age_key(pool, key: str, seconds: int) -> None:
    """Make the task holding `key` look `seconds` old."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tasks SET created_at = now() - make_interval(secs => $2) "
                           "WHERE idempotency_key = $1", key, seconds)


async def holders(pool, *task_ids) -> dict:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id::text, idempotency_key FROM tasks WHERE id = ANY($1::uuid[])",
                                list(task_ids))
    return {row["id"]: row["idempotency_key"] for row in rows}


async def test_a_key_younger_than_the_ttl_still_replays(client, pool):
    headers = {"Idempotency-Key": "ttl-young-1"}
    first = await (await client.post(TASKS, json={"name": "young"}, headers=headers)).json()
    await age_key(pool, "ttl-young-1", 86_400 - 60)
    resp = await client.post(TASKS, json={"name": "young"}, headers=headers)
    assert resp.status == 200 and (await resp.json())["id"] == first["id"]
    resp = await client.post(TASKS, json={"name": "other"}, headers=headers)
    assert resp.status == 409


async def test_an_expired_key_creates_a_new_task(client, pool):
    headers = {"Idempotency-Key": "ttl-expired-1"}
    first = await (await client.post(TASKS, json={"name": "old"}, headers=headers)).json()
    await age_key(pool, "ttl-expired-1", 86_400 + 1)
    resp = await client.post(TASKS, json={"name": "old"}, headers=headers)
    assert resp.status == 201
    second = await resp.json()
    assert second["id"] != first["id"]
    # The new task holds the key now and replays; the old one let go of it.
    resp = await client.post(TASKS, json={"name": "old"}, headers=headers)
    assert resp.status == 200 and (await resp.json())["id"] == second["id"]
    assert await holders(pool, first["id"], second["id"]) == {first["id"]: None, second["id"]: "ttl-expired-1"}


async def test_an_expired_key_may_carry_a_different_body(client, pool):
    headers = {"Idempotency-Key": "ttl-expired-2"}
    assert (await client.post(TASKS, json={"name": "a"}, headers=headers)).status == 201
    await age_key(pool, "ttl-expired-2", 86_400 + 1)
    resp = await client.post(TASKS, json={"name": "b"}, headers=headers)
    assert resp.status == 201 and (await resp.json())["name"] == "b"


async def test_the_ttl_is_configurable(aiohttp_client, settings, pool):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, idempotency_ttl_seconds=60)))
    headers = {"Idempotency-Key": "ttl-short-1"}
    first = await (await client.post(TASKS, json={"name": "s"}, headers=headers)).json()
    await age_key(pool, "ttl-short-1", 61)
    second = await (await client.post(TASKS, json={"name": "s"}, headers=headers)).json()
    assert second["id"] != first["id"]


async def test_racing_creates_with_an_expired_key_make_one_new_task(client, pool):
    headers = {"Idempotency-Key": "ttl-race-1"}
    old = await (await client.post(TASKS, json={"name": "race"}, headers=headers)).json()
    await age_key(pool, "ttl-race-1", 86_400 + 1)
    responses = await asyncio.gather(*(client.post(TASKS, json={"name": "race"}, headers=headers)
                                       for _ in range(20)))
    assert sorted(r.status for r in responses) == [200] * 19 + [201]
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 1 and old["id"] not in ids
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE name = 'race' AND idempotency_key IS NULL "
                                   "AND id = $1", old["id"]) == 1
        assert await conn.fetchval("SELECT count(*) FROM outbox o JOIN tasks t ON t.id = o.task_id "
                                   "WHERE t.idempotency_key = 'ttl-race-1'") == 1


async def test_maintenance_clears_expired_keys_only(client, pool, settings):
    tasks = {}
    for key in ("ttl-sweep-old-1", "ttl-sweep-old-2", "ttl-sweep-new"):
        resp = await client.post(TASKS, json={"name": key}, headers={"Idempotency-Key": key})
        tasks[key] = (await resp.json())["id"]
    await age_key(pool, "ttl-sweep-old-1", 86_400 + 1)
    await age_key(pool, "ttl-sweep-old-2", 90_000)
    done = await maintenance.maintain_once(pool, settings)
    assert done["idempotency_keys"] >= 2
    assert await holders(pool, *tasks.values()) == {
        tasks["ttl-sweep-old-1"]: None, tasks["ttl-sweep-old-2"]: None, tasks["ttl-sweep-new"]: "ttl-sweep-new"}
    async with pool.acquire() as conn:
        # the request hash goes with the key (idempotency_key_has_hash)
        assert await conn.fetchval("SELECT request_hash FROM tasks WHERE id = $1::uuid",
                                   tasks["ttl-sweep-old-1"]) is None
    # Cleared or not, the expired key is free: a create takes it.
    resp = await client.post(TASKS, json={"name": "again"}, headers={"Idempotency-Key": "ttl-sweep-old-1"})
    assert resp.status == 201

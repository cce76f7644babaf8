"""GET endpoints: one task, its status, its history, and the filtered, paginated list."""

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from taskservice import db, tasks
from taskservice.api.app import create_app

TASKS = "/api/v1/tasks/"


async def create(client, **body) -> dict:
    resp = await client.post(TASKS, json={"name": "task", **body})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_get_task(client):
    task = await create(client, name="fetch me")
    resp = await client.get(f"/api/v1/tasks/{task['id']}")
    assert resp.status == 200
    assert await resp.json() == task


async def test_unknown_task_is_404_with_the_old_detail(client):
    for path in ("", "/status", "/events"):
        resp = await client.get(f"/api/v1/tasks/{uuid.uuid4()}{path}")
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["detail"] == "Task not found"


@pytest.mark.parametrize("path", ["/api/v1/tasks/not-a-uuid", "/api/v1/tasks/123/status",
                                  "/api/v1/tasks/zzz/events"])
async def test_malformed_id_is_422(client, path):
    resp = await client.get(path)
    assert resp.status == 422
    assert "task_id" in (await resp.json())["errors"]


async def test_malformed_id_on_delete_is_422(client):
    resp = await client.delete("/api/v1/tasks/nope")
    assert resp.status == 422


async def test_status(client):
    task = await create(client)
    resp = await client.get(f"/api/v1/tasks/{task['id']}/status")
    assert resp.status == 200
    assert await resp.json() == {"task_id": task["id"], "status": "NEW"}


async def test_events_show_the_history(client):
    task = await create(client)
    await client.delete(f"/api/v1/tasks/{task['id']}")
    resp = await client.get(f"/api/v1/tasks/{task['id']}/events")
    assert resp.status == 200
    body = await resp.json()
    assert body["task_id"] == task["id"]
    assert [(e["from_status"], e["status"]) for e in body["items"]] == [(None, "NEW"), ("NEW", "CANCELLED")]
    assert body["items"][0]["created_at"] <= body["items"][1]["created_at"]


async def test_list_filters_and_pages(client):
    tag = uuid.uuid4().hex[:8]
    created = [await create(client, name=f"{tag} item {i}", priority=("HIGH" if i % 2 else "LOW"))
               for i in range(5)]
    resp = await client.get(TASKS, params={"search": tag, "page_size": 2})
    body = await resp.json()
    assert resp.status == 200
    assert body["total"] == 5 and body["page"] == 1 and body["page_size"] == 2
    newest_first = [t["id"] for t in reversed(created)]
    assert [t["id"] for t in body["items"]] == newest_first[:2]

    page3 = await (await client.get(TASKS, params={"search": tag, "page_size": 2, "page": 3})).json()
    assert [t["id"] for t in page3["items"]] == newest_first[4:]
    assert (page3["total"], page3["total_exact"]) == (5, True)

    past = await (await client.get(TASKS, params={"search": tag, "page_size": 2, "page": 9})).json()
    assert past["items"] == [] and past["total"] == 5

    high = await (await client.get(TASKS, params={"search": tag, "priority": "HIGH"})).json()
    assert high["total"] == 2 and {t["priority"] for t in high["items"]} == {"HIGH"}


async def test_list_filter_repeats_mean_any_of(client):
    tag = uuid.uuid4().hex[:8]
    keep = await create(client, name=tag)
    cancelled = await create(client, name=tag)
    await client.delete(f"/api/v1/tasks/{cancelled['id']}")
    only_new = await (await client.get(f"{TASKS}?search={tag}&status=NEW")).json()
    assert [t["id"] for t in only_new["items"]] == [keep["id"]]
    both = await (await client.get(f"{TASKS}?search={tag}&status=NEW&status=CANCELLED")).json()
    assert both["total"] == 2
    assert (await (await client.get(f"{TASKS}?search={tag}&status=FAILED")).json())["total"] == 0


async def test_search_is_case_insensitive_and_covers_description(client):
    tag = uuid.uuid4().hex[:8]
    by_name = await create(client, name=f"Quarterly {tag.upper()} Report")
    by_description = await create(client, name="other", description=f"about {tag}")
    found = await (await client.get(TASKS, params={"search": tag})).json()
    assert {t["id"] for t in found["items"]} == {by_name["id"], by_description["id"]}


async def test_a_search_never_matches_across_name_and_description(client):
    """The trigram index holds name and description as one text; a match must lie in one of them."""
    tag = uuid.uuid4().hex[:8]
    await create(client, name=f"alpha{tag}", description=f"{tag}beta")
    for search, total in ((f"alpha{tag}", 1), (f"{tag}beta", 1), (f"alpha{tag} {tag}beta", 0), (f"{tag} {tag}", 0)):
        found = await (await client.get(TASKS, params={"search": search})).json()
        assert (found["total"], len(found["items"])) == (total, total), search


@pytest.mark.parametrize("needle", ["100%", "a_b", "back\\slash", "it's", '"quoted"'])
async def test_search_treats_wildcards_and_quotes_literally(client, needle):
    tag = uuid.uuid4().hex[:8]
    literal = await create(client, name=f"{tag} {needle} end")
    decoys = {"100%": "1000", "a_b": "axb", "back\\slash": "backslash", "it's": "its",
              '"quoted"': "quoted"}
    await create(client, name=f"{tag} {decoys[needle]} end")
    found = await (await client.get(TASKS, params={"search": f"{tag} {needle}"})).json()
    assert [t["id"] for t in found["items"]] == [literal["id"]]


@pytest.mark.parametrize("query", ["status=DONE", "priority=urgent", "page=0", "page=abc", "page_size=0",
                                   "page_size=101", "search=" + "x" * 201])
async def test_bad_list_parameters_are_422(client, query):
    resp = await client.get(f"{TASKS}?{query}")
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["errors"]


async def test_empty_search_means_no_filter(client):
    resp = await client.get(TASKS, params={"search": ""})
    assert resp.status == 200


async def test_totals_follow_status_changes(client, pool):
    """`total` comes from trigger-kept counters; it must track creates, changes and deletes."""
    async def total(query: str) -> int:
        return (await (await client.get(f"{TASKS}?{query}")).json())["total"]

    async with pool.acquire() as conn:
        exact = {s: await conn.fetchval("SELECT count(*) FROM tasks WHERE status = $1", s)
                 for s in ("NEW", "CANCELLED")}
    assert await total("status=NEW") == exact["NEW"]
    task = await create(client, priority="LOW")
    assert await total("status=NEW") == exact["NEW"] + 1
    await client.delete(f"/api/v1/tasks/{task['id']}")
    assert await total("status=NEW") == exact["NEW"]
    assert await total("status=CANCELLED") == exact["CANCELLED"] + 1
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM tasks WHERE id = $1", uuid.UUID(task["id"]))
        all_tasks = await conn.fetchval("SELECT count(*) FROM tasks")
    assert await total("status=CANCELLED") == exact["CANCELLED"]
    body = await (await client.get(TASKS)).json()
    assert body["total"] == all_tasks and body["total_exact"] is True


async def test_search_total_is_capped_and_says_so(aiohttp_client, client, settings):
    tag = uuid.uuid4().hex[:8]
    for i in range(4):
        await create(client, name=f"{tag}-{i}")
    for limit, total, exact in ((3, 3, False), (4, 4, True)):
        capped = await aiohttp_client(create_app(dataclasses.replace(settings, search_count_limit=limit)))
        body = await (await capped.get(TASKS, params={"search": tag})).json()
        assert (body["total"], body["total_exact"], len(body["items"])) == (total, exact, 4)


async def test_a_capped_search_total_is_remembered_an_exact_one_never(aiohttp_client, client, pool, settings):
    """A search (with no status or schedule filter) found to match more than the limit is not
    counted again for a while: its matches only grow until retention removes old ones. Deleting
    them here shows the count was not made again; an exact total and a search with a status filter
    are counted each time."""
    capped = await aiohttp_client(create_app(dataclasses.replace(settings, search_count_limit=3)))

    async def total(**params) -> tuple[int, bool]:
        body = await (await capped.get(TASKS, params={"page_size": "1", **params})).json()
        return body["total"], body["total_exact"]

    tag, few = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    ids = [(await create(client, name=f"{tag}-{i}"))["id"] for i in range(4)]
    for i in range(2):
        await create(client, name=f"{few}-{i}")
    assert await total(search=tag) == (3, False)
    assert await total(search=few) == (2, True)
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM tasks WHERE id = ANY($1::uuid[])", ids[1:])
    await create(client, name=f"{few}-2")
    await create(client, name=f"{few}-3")
    assert await total(search=tag) == (3, False)  # remembered
    assert await total(search=tag, status="NEW") == (1, True)  # counted
    assert await total(search=tag, priority="HIGH") == (0, True)  # other filters: a search of its own
    assert await total(search=few) == (3, False)  # counted again: it was exact


@pytest.fixture
async def api_pool(settings):
    """A pool that plans as the API's does, for calling the search queries directly."""
    pool = await db.create_pool(settings, plan_cache_mode="force_custom_plan")
    yield pool
    await pool.close()


async def test_search_answers_alike_from_the_newest_tasks_and_from_the_index(client, api_pool):
    """A search page comes from the newest tasks when they hold it, else from the trigram
    index, looked up by one word of the search (docs/design.md, "Query plans"); a count
    reads the index over recent hours first. Every way must give the same tasks in the same
    order, and the same count, with any of the other filters."""
    tag = uuid.uuid4().hex[:8]
    queues = [f"sa-{tag}", f"sb-{tag}"]
    kinds = [{"name": f"Quarterly {tag.upper()}"},                            # matches tag
             {"name": "other", "description": f"for ACCT-{tag}, monthly"},    # tag, acct-tag
             {"name": f"acct {tag}"},                                         # tag: has the word, not acct-tag
             {"name": f"{tag[:4]} {tag[4:]}"}]                                # neither
    made = [await create(client, priority="HIGH" if i % 2 else "LOW", queue=queues[i % 3 == 0], **kinds[i % 4])
            for i in range(16)]
    await client.delete(f"/api/v1/tasks/{made[5]['id']}")
    newest_first = list(reversed(made))
    matches = {tag: [t["id"] for t in newest_first if made.index(t) % 4 != 3],
               f"acct-{tag}": [t["id"] for t in newest_first if made.index(t) % 4 == 1],
               f"acct_{tag}": []}
    async with api_pool.acquire() as conn:
        schedule_id = await conn.fetchval(
            # Disabled: the database is shared by the run, and a due schedule with this empty task
            # would be fired (and refused) by every later test's dispatcher.
            "INSERT INTO schedules (name, every_seconds, task, enabled, next_run_at) "
            "VALUES ($1, 60, '{}', false, NULL) RETURNING id",
            f"search {tag}")
        await conn.execute("UPDATE tasks SET schedule_id = $1, scheduled_for = created_at WHERE id = ANY ($2::uuid[])",
                           schedule_id, [t["id"] for i, t in enumerate(made) if i % 5 < 2])
        found = {str(r["id"]): r for r in await conn.fetch(
            "SELECT id, status, priority, queue, schedule_id FROM tasks WHERE id = ANY ($1::uuid[])",
            [t["id"] for t in made])}
        cases = [(tag, {}, 3, 0), (tag, {}, 3, 3), (tag, {}, 5, 10), (tag.upper(), {"priorities": ["HIGH"]}, 2, 0),
                 (tag, {"statuses": ["NEW"]}, 4, 0), (tag, {"statuses": ["NEW", "CANCELLED"]}, 4, 0),
                 (f"acct-{tag}", {}, 2, 0), (f"acct-{tag}", {}, 2, 2), (f"ACCT-{tag}", {}, 10, 0),
                 (f"acct_{tag}", {}, 10, 0), (tag, {"queues": queues[:1]}, 3, 0), (tag, {"queues": queues}, 4, 2),
                 (f"acct-{tag}", {"queues": queues[1:]}, 10, 0), (tag, {"schedule_id": schedule_id}, 2, 1),
                 (tag, {"schedule_id": schedule_id, "queues": queues[1:], "priorities": ["LOW"]}, 10, 0)]
        for search, filters, limit, offset in cases:
            wanted = [t for t in matches[search.lower()]
                      if all(found[t][column] in filters.get(name, [found[t][column]]) for name, column in
                             (("statuses", "status"), ("priorities", "priority"), ("queues", "queue")))
                      and found[t]["schedule_id"] == filters.get("schedule_id", found[t]["schedule_id"])]
            key, _ = await tasks.search_key(conn, search)
            args = {"statuses": None, "priorities": None, **filters, "search": search, "key": key}
            for newest_rows in (100_000, 0):  # the newest tasks hold the page; the index alone
                rows = await tasks.search_page(conn, **args, limit=limit, offset=offset, newest_rows=newest_rows)
                assert [str(r["id"]) for r in rows] == wanted[offset:offset + limit], (search, filters, newest_rows)
                # From the index, every row also says how many match in all; from the walk, none does.
                assert {r["matched"] for r in rows} <= ({len(wanted)} if not rows or not rows[0]["from_newest"]
                                                        else {None}), (search, filters, newest_rows)
            page = await tasks.search_page(conn, **args, limit=3, offset=0)
            for most in {max(len(wanted) - 1, 1), len(wanted) or 1, len(wanted) + 1}:
                # The whole index; hours that hold every task; hours that hold none (so the whole
                # index after all); the hours a page of the newest tasks suggests.
                for since in (None, datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(hours=2),
                              tasks.search_count_since(page, most)):
                    counted = await tasks.search_count(conn, **args, limit=most, since=since)
                    assert counted == min(len(wanted), most), (search, filters, most, since)
    # Through the API: a queue and a schedule narrow a search, page and total alike.
    for params, wanted in (([("search", tag), ("queue", queues[0])],
                            [t for t in matches[tag] if found[t]["queue"] == queues[0]]),
                           ([("search", tag), ("schedule_id", str(schedule_id)), ("page_size", "2")],
                            [t for t in matches[tag] if found[t]["schedule_id"] == schedule_id])):
        body = await (await client.get(TASKS, params=params)).json()
        assert [t["id"] for t in body["items"]] == wanted[:len(body["items"])] and body["items"], params
        assert (body["total"], body["total_exact"]) == (len(wanted), True), params


async def test_the_index_looks_up_the_word_fewest_recent_tasks_contain(client, api_pool):
    common, rare = uuid.uuid4().hex[:10], uuid.uuid4().hex[:6]
    for i in range(5):  # 5 of the newest 200 tasks: 2.5%
        await create(client, name=f"{common} {i}")
    await create(client, name="search key probe", description=rare)
    async with api_pool.acquire() as conn:
        assert (await tasks.search_key(conn, f"{common}-{rare}"))[0] == rare
        assert (await tasks.search_key(conn, f"{rare} {common}"))[0] == rare
        assert (await tasks.search_key(conn, f"{common}"))[0] == common
        # Whether a walk of the newest tasks may fill a page: a word in 2% of them.
        assert (await tasks.search_key(conn, common))[1] is True
        assert (await tasks.search_key(conn, uuid.uuid4().hex))[1] is False

"""The five requests of the replaced service's README, replayed verbatim, give its shapes."""

ORIGINAL_TASK_FIELDS = {"id", "name", "description", "priority", "status", "created_at", "started_at",
                        "finished_at", "result", "error"}
HEADERS = {"accept": "application/json"}


async def test_original_readme_requests(client):
    # 1. create
    resp = await client.post("/api/v1/tasks/", headers={**HEADERS, "Content-Type": "application/json"},
                             data='{\n  "name": "string",\n  "description": "string",\n  "priority": "MEDIUM"\n}')
    assert resp.status == 201
    task = await resp.json()
    assert ORIGINAL_TASK_FIELDS <= task.keys()
    assert (task["name"], task["description"], task["priority"], task["status"]) == (
        "string", "string", "MEDIUM", "NEW")

    # 2. filtered, paginated list
    resp = await client.get("/api/v1/tasks/?status=NEW&priority=MEDIUM&page=1&page_size=20", headers=HEADERS)
    assert resp.status == 200
    page = await resp.json()
    assert set(page) >= {"items", "total", "page", "page_size"}
    assert page["page"] == 1 and page["page_size"] == 20 and page["total"] >= 1
    assert all(t["status"] == "NEW" and t["priority"] == "MEDIUM" for t in page["items"])
    assert all(ORIGINAL_TASK_FIELDS <= t.keys() for t in page["items"])

    # 3. get
    resp = await client.get(f"/api/v1/tasks/{task['id']}", headers=HEADERS)
    assert resp.status == 200
    assert (await resp.json())["id"] == task["id"]

    # 4. cancel
    resp = await client.delete(f"/api/v1/tasks/{task['id']}", headers=HEADERS)
    assert resp.status == 200
    cancelled = await resp.json()
    assert ORIGINAL_TASK_FIELDS <= cancelled.keys() and cancelled["status"] == "CANCELLED"

    # 5. status
    resp = await client.get(f"/api/v1/tasks/{task['id']}/status", headers=HEADERS)
    assert resp.status == 200
    assert await resp.json() == {"task_id": task["id"], "status": "CANCELLED"}

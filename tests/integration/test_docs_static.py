"""The Swagger UI's static files: a missing one is a 404 problem, logged and counted as the 404 it is."""

import logging

from prometheus_client import REGISTRY

STATIC = "/static/swagger"


def requests_counted(status: str) -> float:
    labels = {"route": STATIC, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("taskservice_http_requests_total", labels) or 0.0


async def test_a_missing_static_file_is_a_404_problem_logged_and_counted_as_404(client, caplog):
    caplog.set_level(logging.INFO)
    found, missing = requests_counted("200"), requests_counted("404")
    resp = await client.get(f"{STATIC}/no-such-file.js")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == 404
    assert (requests_counted("200"), requests_counted("404")) == (found, missing + 1)
    access = [r for r in caplog.records if r.name == "taskservice.access"]
    assert [r.status for r in access] == [404]


async def test_a_static_file_that_exists_is_served(client):
    found = requests_counted("200")
    resp = await client.get(f"{STATIC}/swagger-ui.css")
    assert resp.status == 200
    assert resp.content_type == "text/css" and len(await resp.read()) > 1000
    assert requests_counted("200") == found + 1

"""The invoices example (examples/invoices), deployed as its README says: the package installed
(not editable) beside taskservice in a fresh venv, HANDLER_MODULES naming its module, an API and
a worker run from that venv outside the source tree, on their own database, exchange and queue.
Every task of its three kinds (async, thread, process) is run end to end through the worker."""

import asyncio
import hashlib
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from taskservice.settings import Settings
from tests.support.processes import free_port, process_logging_to, wait_for_line
from tests.support.services import AMQP_URL, ROOT, RUN_ID, SERVER_URL, delete_broker_names, with_database
from tests.support.venvs import build_wheel, outside_env, run, taskservice_wheel, venv_with

EXAMPLE = ROOT / "examples" / "invoices"
HANDLER_MODULES = "invoices.handlers"
KINDS = ("render_invoice", "email_invoice", "invoice_thumbnail")
INVOICE = {"number": "2026-0042", "customer": "Acme GmbH", "tax_rate": "0.19",
           "lines": [{"description": "consulting", "quantity": 3, "unit_price": "120.00"},
                     {"description": "travel", "quantity": 1, "unit_price": 89.9}]}


@pytest.fixture(scope="module")
def example_python(tmp_path_factory) -> Path:
    """A venv's python with taskservice and the example installed from their wheels."""
    tmp = tmp_path_factory.mktemp("example")
    wheels = [taskservice_wheel(tmp), build_wheel(EXAMPLE, ("pyproject.toml", "invoices"), tmp)]
    return venv_with(wheels, tmp / "venv")


@pytest.fixture
async def deployment(example_python, tmp_path):
    """The environment the example's API and worker share, as its compose override gives it:
    a database migrated by the venv's `taskservice migrate`, and this test's broker names."""
    name = f"taskservice.example.{RUN_ID}.{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=with_database(SERVER_URL, f"taskservice_example_{RUN_ID}"),
                        amqp_url=AMQP_URL, amqp_exchange=name, amqp_queue=f"{name}.tasks")
    taskservice = str(example_python.parent / "taskservice")
    migrate_env = {**outside_env(), "DATABASE_URL": settings.database_url}
    run(taskservice, "migrate", "--wait", "up", cwd=tmp_path, env=migrate_env)  # creates the database too
    try:
        yield {"DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url,
               "AMQP_EXCHANGE": settings.amqp_exchange, "AMQP_QUEUE": settings.amqp_queue,
               "HANDLER_MODULES": HANDLER_MODULES, "DISPATCH_POLL_SECONDS": "0.2"}
    finally:
        run(taskservice, "migrate", "drop", cwd=tmp_path, env=migrate_env)
        await delete_broker_names(settings)


async def wait_for_finished(http: aiohttp.ClientSession, url: str, task_ids, timeout: float = 60) -> dict:
    """Every task's JSON once none is waiting or running any more (the deadline is generous: the
    process pool starts on the first process task)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for task_id in task_ids:
            async with http.get(f"{url}/api/v1/tasks/{task_id}") as resp:
                found[task_id] = await resp.json()
        if all(task["status"] in ("COMPLETED", "FAILED", "CANCELLED") for task in found.values()):
            return found
        assert time.monotonic() < deadline, {task_id: task["status"] for task_id, task in found.items()}
        await asyncio.sleep(0.2)


async def test_the_installed_example_runs_its_three_kinds_end_to_end(example_python, deployment, tmp_path):
    port = free_port()
    api_env = {**deployment, "HOST": "127.0.0.1", "PORT": str(port), "DISPATCHER_EMBEDDED": "true"}
    worker_env = {**deployment, "WORKER_ID": f"invoices-{uuid.uuid4().hex[:6]}"}
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    url = f"http://127.0.0.1:{port}"
    with (process_logging_to("api", api_env, api_log, python=example_python) as api,
          process_logging_to("worker", worker_env, worker_log, python=example_python) as worker):
        await asyncio.to_thread(wait_for_line, api, api_log, "api listening")
        await asyncio.to_thread(wait_for_line, worker, worker_log, "consuming")
        async with aiohttp.ClientSession() as http:
            # The API loaded the example's module: it lists the kinds and checks their payloads.
            async with http.get(f"{url}/api/v1/kinds") as resp:
                assert resp.status == 200
                kinds = {item["kind"]: item for item in (await resp.json())["items"]}
            assert {kind: kinds[kind]["executor"] for kind in KINDS} == {
                "render_invoice": "async", "email_invoice": "thread", "invoice_thumbnail": "process"}
            invoice = kinds["render_invoice"]
            assert (invoice["priority"], invoice["max_attempts"], invoice["timeout_seconds"]) == ("HIGH", 5, 30)
            assert set(invoice["payload_schema"]["required"]) == {"number", "customer", "lines"}

            bad = {"name": "bad", "kind": "render_invoice",
                   "payload": {**INVOICE, "lines": [{"description": "x", "quantity": 0, "unit_price": "1"}]}}
            async with http.post(f"{url}/api/v1/tasks/", json=bad) as resp:
                assert resp.status == 422
                assert list((await resp.json())["errors"]) == ["payload.lines.0.quantity"]
            bad = {"name": "bad", "kind": "email_invoice", "payload": {"to": "nobody", "number": "1"}}
            async with http.post(f"{url}/api/v1/tasks/", json=bad) as resp:
                assert resp.status == 422
                assert list((await resp.json())["errors"]) == ["payload.to"]

            creates = [
                {"name": "invoice", "kind": "render_invoice", "payload": INVOICE},
                {"name": "email", "kind": "email_invoice", "payload": {"to": "ap@acme.example", "number": "2026-0042"}},
                {"name": "thumbnail", "kind": "invoice_thumbnail",
                 "payload": {"width": 128, "height": 96, "factor": 4}},
            ]
            created = []
            for body in creates:
                async with http.post(f"{url}/api/v1/tasks/", json=body) as resp:
                    assert resp.status == 201, await resp.text()
                    created.append(await resp.json())
            assert created[0]["priority"] == "HIGH"  # the kind's default
            finished = await wait_for_finished(http, url, [task["id"] for task in created])
        invoice_id, email_id, thumbnail_id = (task["id"] for task in created)
        assert {task_id: task["status"] for task_id, task in finished.items()} == dict.fromkeys(finished, "COMPLETED")
        # 3 x 120.00 + 89.90 = 449.90; 19% tax is 85.481, to the cent 85.48.
        assert finished[invoice_id]["result"] == {"number": "2026-0042", "customer": "Acme GmbH", "currency": "EUR",
                                                  "subtotal": "449.90", "tax": "85.48", "total": "535.38"}
        message_id = f"<invoice-2026-0042.{email_id}.1@invoices.example>"
        assert finished[email_id]["result"] == {"sent_to": "ap@acme.example", "message_id": message_id}
        # Each 4x4 box of the gradient x + y averages to 4X + 4Y + 3 exactly.
        thumbnail = bytes(4 * x + 4 * y + 3 for y in range(24) for x in range(32))
        assert finished[thumbnail_id]["result"] == {"width": 32, "height": 24,
                                                    "sha256": hashlib.sha256(thumbnail).hexdigest()}
        assert f"emailing invoice 2026-0042 to ap@acme.example as {message_id}" in worker_log.read_text()
        for process in (worker, api):
            process.terminate()
            assert process.wait(30) == 0, (api_log if process is api else worker_log).read_text()
    for log in (api_log, worker_log):
        assert "Traceback" not in log.read_text(), log.read_text()

"""The dashboard in headless Chromium (Debian's `chromium`, driven by Playwright's async API).

One server (API with the embedded dispatcher, plus a worker) and one browser serve the whole module,
all on the module's event loop; each test gets a fresh browser context and works only with its own
tasks (names carry a unique tag, and the page is filtered by it). Screenshots go to test-output/.

Without Chromium the tests skip, unless REQUIRE_BROWSER=1 (set by .ci/run), where
they fail. CHROMIUM_PATH overrides /usr/bin/chromium.
"""

import asyncio
import dataclasses
import os
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import async_playwright, expect

from taskservice import db, worker
from taskservice.api.app import create_app
from taskservice.settings import Settings
from tests.support import handlers_for_tests
from tests.support.execution import new_task, start
from tests.support.services import AMQP_URL, ROOT, RUN_ID, delete_broker_names

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Without these Chromium calls Google's services at start-up (and here gets refused, which logs errors).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "test-output"
KEY = "dashboard-browser-key-0123456789"
WAIT_MS = 15_000  # generous: a loaded 2-core machine


def browser_missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


def module_settings(database_url: str, **overrides) -> Settings:
    name = f"taskservice.test.{RUN_ID}.dash{uuid.uuid4().hex[:6]}"
    fields = {"database_url": database_url, "amqp_url": AMQP_URL, "db_pool_min": 1, "db_pool_max": 10,
              "amqp_exchange": name, "amqp_queue": f"{name}.tasks", "dispatcher_embedded": True,
              "dispatch_poll_seconds": 0.2, "reap_interval_seconds": 0.5, "retry_base_seconds": 0.05,
              "retry_max_seconds": 0.2, "shutdown_grace_seconds": 1.0,
              "worker_id": f"dash-worker-{uuid.uuid4().hex[:6]}"}
    return Settings(**{**fields, **overrides})


@dataclasses.dataclass
class Server:
    url: str
    http: aiohttp.ClientSession  # the test's own API client
    runner: web.AppRunner

    async def create(self, name: str, **fields) -> dict:
        async with self.http.post(f"{self.url}/api/v1/tasks/", json={"name": name, **fields}) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()

    async def get(self, path: str) -> dict:
        async with self.http.get(f"{self.url}{path}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def wait_for(self, task_id: str, statuses: set[str], timeout: float = 15) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            task = await self.get(f"/api/v1/tasks/{task_id}")
            if task["status"] in statuses:
                return task
            assert asyncio.get_running_loop().time() < deadline, f"{task['name']} still {task['status']}"
            await asyncio.sleep(0.05)


async def serve(settings: Settings, headers: dict | None = None, port: int = 0) -> Server:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = runner.addresses[0][1]
    return Server(f"http://127.0.0.1:{port}", aiohttp.ClientSession(headers=headers), runner)


async def stop_server(server: Server) -> None:
    await server.http.close()
    await server.runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    missing = browser_missing()
    if missing:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    expect.set_options(timeout=WAIT_MS)

    SCREENSHOTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        # Playwright gives every launch a fresh temporary profile (user-data-dir).
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(database_url, browser):
    """The API (embedded dispatcher) and a worker running the built-in and the test handlers."""
    # Callbacks may go to this machine's test receivers.
    settings = module_settings(database_url, handler_modules=("tests.support.handlers_for_tests",),
                               callback_allow_private=True, callback_poll_seconds=0.2,
                               callback_retry_base_seconds=0.05, callback_retry_max_seconds=0.2)
    pool = await db.create_pool(settings)
    # Outbox rows earlier tests left unpublished are theirs, not for this module's worker.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
    await pool.close()
    server = await serve(settings)
    work = start(worker.main, settings)
    yield server
    await work.shutdown()
    await stop_server(server)
    await delete_broker_names(settings)


@dataclasses.dataclass
class Watched:
    """A page with what it logged and asked for."""
    page: object
    errors: list[str]
    requests: list[str]

    def assert_clean(self) -> None:
        assert not self.errors, self.errors
        outside = [url for url in self.requests if urlsplit(url).hostname not in ("127.0.0.1", "localhost")]
        assert not outside, outside


async def open_page(browser, url: str, **context_args) -> tuple[object, Watched]:
    context = await browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **context_args})
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    watched = Watched(page, [], [])
    page.on("console", lambda message: message.type == "error" and watched.errors.append(message.text))
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    page.on("request", lambda request: watched.requests.append(request.url))
    await page.goto(url)
    return context, watched


@pytest_asyncio.fixture(loop_scope="module")
async def watched(browser, server):
    context, watched = await open_page(browser, server.url)
    yield watched
    await context.close()


def tag() -> str:
    return f"dash-{uuid.uuid4().hex[:8]}"


async def until_live(page) -> None:
    await page.locator("#live[data-state='live']").wait_for()


async def search(page, text: str, rows: int | None = None) -> None:
    """Type a search; with rows, wait until the table lists just those matches.

    Until the debounced search answers, the table shows the unfiltered list, and it re-renders
    when the answer comes: a click aimed at a row before then can land on another row's button.
    """
    await page.get_by_label("Search name or description").fill(text)
    if rows is not None:
        names = page.locator("#tasks tbody tr .name")
        await expect(names).to_have_text([re.compile(re.escape(text))] * rows)


def row(page, name: str):
    return page.locator("#tasks tbody tr", has=page.get_by_role("button", name=name, exact=True))


def later() -> str:
    """A run_at an hour away: the task stays NEW, so it can be cancelled at leisure."""
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


async def test_page_loads_without_errors_or_outside_requests(watched, server):
    page = watched.page
    await until_live(page)
    await page.locator("#counts tbody tr").first.wait_for()
    assert await page.locator("#counts tbody tr").count() == 6
    assert re.fullmatch(r"[\d,. ]+", await page.locator("#stat-total").text_content())
    await page.locator("#chart svg").wait_for()
    watched.assert_clean()


async def test_tasks_created_through_the_api_appear_and_change_live(watched, server):
    page = watched.page
    name = tag()
    await search(page, name)
    await page.locator("#tasks-empty").wait_for()
    await until_live(page)
    # A marker on the window: it survives only if the page never reloads.
    await page.evaluate("window.notReloaded = true")
    waiting = await server.create(f"{name}-waiting", run_at=later())
    sleeper = await server.create(f"{name}-sleeper", kind="sleep", payload={"seconds": 0.5})
    await row(page, waiting["name"]).wait_for()
    assert await row(page, waiting["name"]).locator(".badge").text_content() == "NEW"
    await row(page, sleeper["name"]).locator(".badge", has_text="COMPLETED").wait_for()
    assert await page.evaluate("window.notReloaded") is True
    watched.assert_clean()


async def test_cancel_from_the_page(watched, server):
    page = watched.page
    name = tag()
    queued = await server.create(f"{name}-queued", run_at=later())
    running = await server.create(f"{name}-running", kind="sleep", payload={"seconds": 60})
    await server.wait_for(running["id"], {"IN_PROGRESS"})
    await search(page, name, rows=2)
    await until_live(page)
    await row(page, queued["name"]).get_by_role("button", name=f"Cancel {queued['name']}").click()
    await page.locator("#notice", has_text=f"“{queued['name']}” is cancelled.").wait_for()
    await row(page, queued["name"]).locator(".badge", has_text="CANCELLED").wait_for()
    # A running task: the request is accepted (202), the worker stops it, the stream shows the outcome.
    await row(page, running["name"]).get_by_role("button", name=f"Cancel {running['name']}").click()
    await page.locator("#notice", has_text="Cancellation of").wait_for()
    await row(page, running["name"]).locator(".badge", has_text="CANCELLED").wait_for()
    assert (await server.get(f"/api/v1/tasks/{running['id']}"))["status"] == "CANCELLED"
    # Cancelled tasks offer a retry instead.
    assert await row(page, queued["name"]).get_by_role("button", name=f"Retry {queued['name']}").is_visible()


async def test_filter_by_status(watched, server):
    page = watched.page
    name = tag()
    done = await server.create(f"{name}-done", kind="noop")
    failed = await server.create(f"{name}-failed", kind="fail", max_attempts=1)
    waiting = await server.create(f"{name}-waiting", run_at=later())
    await server.wait_for(done["id"], {"COMPLETED"})
    await server.wait_for(failed["id"], {"FAILED"})
    await search(page, name)
    await page.locator("#tasks tbody tr").nth(2).wait_for()
    names = page.locator("#tasks tbody tr .name")
    await page.get_by_label("Status").select_option("FAILED")
    await expect(names).to_have_text([failed["name"]])
    await page.get_by_label("Status").select_option("NEW")
    await expect(names).to_have_text([waiting["name"]])
    await page.get_by_label("Status").select_option("")
    # Newest first, as the API lists them.
    await expect(names).to_have_text([waiting["name"], failed["name"], done["name"]])


async def test_open_a_task_with_the_keyboard_and_see_its_history(watched, server):
    page = watched.page
    name = tag()
    task = await server.create(f"{name}-echo", kind="echo", payload={"greeting": "<b>hello</b>"},
                               description="shown in the dialog")
    await server.wait_for(task["id"], {"COMPLETED"})
    await search(page, name, rows=1)
    await page.get_by_role("button", name=task["name"], exact=True).focus()
    await page.keyboard.press("Enter")
    dialog = page.locator("dialog#detail")
    await expect(dialog.locator("#detail-title")).to_have_text(task["name"])
    steps = dialog.locator("#detail-history li:not(.total)")
    await steps.nth(3).wait_for()
    assert [s.strip() for s in await steps.locator(".transition").all_text_contents()] == [
        "created as NEW", "NEW → PENDING", "PENDING → IN_PROGRESS", "IN_PROGRESS → COMPLETED"]
    assert await dialog.locator("#detail-history").get_by_text("after the previous step").count() == 3
    assert await dialog.locator("#detail-history .total").is_visible()
    # Task data is shown as text, never parsed as HTML.
    assert '"greeting": "<b>hello</b>"' in await dialog.locator("#detail-payload").text_content()
    assert await dialog.locator("#detail-outcome pre").text_content() != ""
    assert await dialog.locator("b").count() == 0
    await dialog.get_by_text("shown in the dialog").wait_for()
    await page.screenshot(path=SCREENSHOTS / "dashboard-detail.png")
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    await expect(page.get_by_role("button", name=task["name"], exact=True)).to_be_focused()
    watched.assert_clean()


async def test_a_running_tasks_progress_bar_moves_live_in_its_row_and_dialog(watched, server):
    page = watched.page
    await until_live(page)
    name, gate = tag(), uuid.uuid4().hex
    task = await server.create(name, kind="sync_progress_gates", payload={"gate": gate})
    await search(page, name)
    bar = row(page, name).locator(".progress")
    await expect(bar).to_have_text("25% · a quarter")
    assert await bar.locator("progress").get_attribute("aria-label") == "Progress 25% · a quarter"
    await page.get_by_role("button", name=name, exact=True).click()
    dialog = page.locator("dialog#detail")
    await expect(dialog.locator("#detail-progress")).to_have_text("25% · a quarter")
    handlers_for_tests.GATES.setdefault(f"{gate}.1", threading.Event()).set()
    # Both move with the stream's progress event, without a reload.
    await expect(dialog.locator("#detail-progress")).to_have_text("75% · three quarters")
    await expect(bar).to_have_text("75% · three quarters")
    assert await bar.locator("progress").evaluate("node => node.value") == 0.75
    await page.keyboard.press("Escape")
    handlers_for_tests.GATES.setdefault(f"{gate}.2", threading.Event()).set()
    await server.wait_for(task["id"], {"COMPLETED"})
    await expect(row(page, name).locator(".badge")).to_have_text("COMPLETED")
    await expect(bar).to_have_count(0)  # a finished task's row shows no bar; its dialog keeps the last report
    watched.assert_clean()


async def test_the_dialog_shows_a_tasks_callback_attempts(watched, server):
    answers = iter([503])

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=next(answers, 200), text="down for maintenance")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        page = watched.page
        name = tag()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        task = await server.create(f"{name}-hooked", kind="noop", callback_url=url)
        await server.wait_for(task["id"], {"COMPLETED"})
        deadline = asyncio.get_running_loop().time() + 15
        while [d["status"] for d in (await server.get(f"/api/v1/tasks/{task['id']}/callbacks"))["deliveries"]] \
                != ["delivered"]:
            assert asyncio.get_running_loop().time() < deadline, "the callback was not delivered"
            await asyncio.sleep(0.1)
        await search(page, name, rows=1)
        await page.get_by_role("button", name=task["name"], exact=True).click()
        dialog = page.locator("dialog#detail")
        await dialog.get_by_text(url).wait_for()
        callbacks = dialog.locator("#detail-callbacks")
        await callbacks.get_by_text("COMPLETED: delivered").wait_for()
        attempts = callbacks.locator(".attempts > li")
        await expect(attempts).to_have_count(2)
        assert "HTTP 503" in await attempts.nth(0).text_content()
        assert "down for maintenance" in await attempts.nth(0).locator("pre").text_content()
        assert "HTTP 200" in await attempts.nth(1).text_content()
        watched.assert_clean()
    finally:
        await runner.cleanup()


async def test_create_from_the_form_explains_what_is_wrong(watched, server):
    page = watched.page
    name = tag()
    await search(page, name)
    await until_live(page)
    await page.get_by_role("button", name="New task").click()
    form = page.locator("dialog#create")
    await form.get_by_label("Name").fill(f"{name}-form")
    await form.get_by_label("Payload").fill('{"seconds": ')
    await form.get_by_role("button", name="Create task").click()
    await form.get_by_text("Payload is not valid JSON").wait_for()
    await form.get_by_label("Payload").fill("[1, 2]")
    await form.get_by_role("button", name="Create task").click()
    await form.get_by_text("Payload must be a JSON object").wait_for()
    # The API refuses this kind (422): its message for the field shows next to it.
    await form.get_by_label("Payload").fill('{"seconds": 0.2}')
    await form.get_by_label("Kind").fill("no spaces allowed")
    await form.get_by_role("button", name="Create task").click()
    await form.locator("#create-kind-error", has_text="Must be 1-100 letters").wait_for()
    await form.get_by_text("Could not create the task").wait_for()
    await form.get_by_label("Kind").fill("sleep")
    await form.get_by_role("button", name="Create task").click()
    await page.locator("#notice", has_text=f"Created “{name}-form”").wait_for()
    await form.wait_for(state="hidden")
    await row(page, f"{name}-form").locator(".badge", has_text="COMPLETED").wait_for()


async def test_retry_a_failed_task(watched, server):
    page = watched.page
    name = tag()
    task = await server.create(f"{name}-flaky", kind="fail_first_run", max_attempts=1)
    await server.wait_for(task["id"], {"FAILED"})
    await search(page, name, rows=1)
    await until_live(page)
    await row(page, task["name"]).get_by_role("button", name=f"Retry {task['name']}").click()
    await page.locator("#notice", has_text=f"“{task['name']}” will run again").wait_for()
    await row(page, task["name"]).locator(".badge", has_text="COMPLETED").wait_for()
    # A finished task can no longer be cancelled: the API's 409 is shown in words.
    async with server.http.delete(f"{server.url}/api/v1/tasks/{task['id']}") as resp:
        assert resp.status == 409


async def test_overview_screenshots_wide_and_phone(browser, server):
    name = tag()
    for kind, extra in [("noop", {}), ("noop", {"priority": "HIGH"}), ("echo", {"priority": "LOW"}),
                        ("fail", {"max_attempts": 1}), ("sleep", {"payload": {"seconds": 30}}),
                        ("noop", {"run_at": later()}), ("noop", {"run_at": later(), "priority": "HIGH"})]:
        await server.create(f"{name}-{kind}", kind=kind, **extra)
    await server.create(f"{name}-cancelled", run_at=later())
    page_of = await server.get(f"/api/v1/tasks/?search={name}-cancelled")
    async with server.http.delete(f"{server.url}/api/v1/tasks/{page_of['items'][0]['id']}") as resp:
        assert resp.status == 200
    context, watched = await open_page(browser, server.url)
    page = watched.page
    await until_live(page)
    await page.locator("#tasks tbody tr").nth(7).wait_for()
    await page.locator("#tasks .badge", has_text="IN PROGRESS").first.wait_for()
    await page.screenshot(path=SCREENSHOTS / "dashboard-overview.png", full_page=True)
    await context.close()

    context, watched = await open_page(browser, server.url, viewport={"width": 390, "height": 844},
                                       is_mobile=True, has_touch=True)
    page = watched.page
    await page.locator("#tasks tbody tr").first.wait_for()
    # Nothing wider than the phone: no sideways scrolling of the page.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=SCREENSHOTS / "dashboard-phone.png")
    await page.locator("#tasks").scroll_into_view_if_needed()
    await page.screenshot(path=SCREENSHOTS / "dashboard-phone-tasks.png")
    watched.assert_clean()
    await context.close()


async def test_with_api_keys_the_page_asks_for_a_key(browser, database_url):
    settings = module_settings(database_url, api_keys=(KEY,), dispatcher_embedded=False)
    server = await serve(settings, headers={"Authorization": f"Bearer {KEY}"})
    context = None
    try:
        task = await server.create(f"{tag()}-secret")
        context, watched = await open_page(browser, server.url)
        page = watched.page
        key = page.get_by_label("API key", exact=True)
        await key.wait_for()
        assert await page.locator("#content").is_hidden()
        await key.fill("not-the-key")
        await page.get_by_role("button", name="Use key").click()
        await page.get_by_text("That API key was not accepted").wait_for()
        await key.fill(KEY)
        await page.get_by_role("button", name="Use key").click()
        await search(page, task["name"])
        await row(page, task["name"]).wait_for()
        await until_live(page)  # the stream is protected too, and got the key
        assert await page.evaluate("sessionStorage.getItem('taskservice.apiKey')") == KEY
        await page.reload()  # the key lasts as long as the tab
        await page.locator("#content").wait_for()
        await page.get_by_role("button", name="Forget key").click()
        await key.wait_for()
        assert await page.evaluate("sessionStorage.getItem('taskservice.apiKey')") is None
        assert not [url for url in watched.requests if urlsplit(url).hostname != "127.0.0.1"]
    finally:
        if context is not None:
            await context.close()
        await stop_server(server)
        await delete_broker_names(settings)


async def test_after_a_server_restart_the_page_resumes_from_the_last_event(browser, database_url):
    settings = module_settings(database_url, dispatcher_embedded=False)
    server = await serve(settings)
    port = int(server.url.rsplit(":", 1)[1])
    context, watched = await open_page(browser, server.url)
    page = watched.page
    streams = []
    page.on("request", lambda request: "/tasks/stream" in request.url and streams.append(request.headers))
    name = tag()
    try:
        await search(page, name)
        await until_live(page)
        before = await server.create(f"{name}-before")
        await row(page, before["name"]).wait_for()
        # The row came with the task's NEW event (other tests' tasks may have sent later ones).
        created = (await server.get(f"/api/v1/tasks/{before['id']}/events"))["items"][0]["id"]
        await stop_server(server)  # ends the open stream
        await page.locator("#live[data-state='reconnecting']").wait_for()
        # Made while the page cannot listen: it must arrive once the stream is back.
        pool = await db.create_pool(settings)
        try:
            await new_task(pool, f"{name}-during")
        finally:
            await pool.close()
        server = await serve(settings, port=port)
        await row(page, f"{name}-during").wait_for()
        await until_live(page)
        assert streams[0].get("last-event-id") is None
        assert int(streams[-1].get("last-event-id", "0")) >= created
    finally:
        await context.close()
        await stop_server(server)
        await delete_broker_names(settings)


async def test_the_stream_parser_handles_any_chunking(watched):
    # The page's own parser, fed one stream cut at every awkward place: inside a CRLF, mid-field,
    # with comments, multi-line data, a retry hint and an event without a name.
    events = await watched.page.evaluate(r"""async () => {
        const { createParser } = await import("/dashboard/sse.js");
        const events = [], retries = [];
        const text = "retry: 2000\r\n: heartbeat\r\nevent: ready\r\ndata: {}\r\n\r\n"
            + "id: 7\nevent: status\ndata: {\"a\":\ndata: 1}\n\n: heartbeat\n\rdata:plain\r\r"
            + "event: empty\n\n";
        for (const cut of [1, 2, 3, 5, 7, 64]) {
            const feed = createParser((event) => events.push(event), (ms) => retries.push(ms));
            for (let i = 0; i < text.length; i += cut) feed(text.slice(i, i + cut));
        }
        return { events, retries };
    }""")
    expected = [{"type": "ready", "data": "{}", "id": None},
                {"type": "status", "data": '{"a":\n1}', "id": "7"},
                {"type": "message", "data": "plain", "id": "7"}]
    assert events["events"] == expected * 6
    assert events["retries"] == [2000] * 6
    watched.assert_clean()


def schedule_row(page, name: str):
    return page.locator("#schedules tbody tr", has=page.locator(".name", has_text=name))


async def test_schedules_create_run_now_disable_enable_and_delete_from_the_page(watched, server):
    page = watched.page
    name = tag()
    await until_live(page)
    await page.get_by_role("button", name="New schedule").click()
    form = page.locator("dialog#schedule-create")
    await form.get_by_label("Name", exact=True).fill(f"{name}-nightly")
    await form.get_by_label("Cron expression").fill("99 * * * *")
    await form.get_by_label("Time zone").fill("Europe/Berlin")
    await form.get_by_label("Task name").fill(f"{name}-job")
    await form.get_by_label("Kind (optional)").fill("echo")
    await form.get_by_role("button", name="Create schedule").click()
    # The API's 422 names the field: its message shows next to it.
    await form.locator("#schedule-cron-error", has_text="Invalid cron expression").wait_for()
    await form.get_by_label("Every (seconds)").fill("60")
    await form.get_by_role("button", name="Create schedule").click()
    await form.locator("#schedule-every-error", has_text="not both").wait_for()
    await form.get_by_label("Every (seconds)").fill("")
    await form.get_by_label("Cron expression").fill("@daily")
    await form.get_by_role("button", name="Create schedule").click()
    await page.locator("#notice", has_text=f"Created schedule “{name}-nightly”").wait_for()
    await form.wait_for(state="hidden")

    listed = schedule_row(page, f"{name}-nightly")
    await expect(listed.locator(".timing")).to_have_text("@daily (Europe/Berlin)")
    await expect(listed.locator(".next time")).to_have_count(1)
    await expect(listed.locator(".outcome")).to_have_text("—")
    schedules = await server.get("/api/v1/schedules/?page_size=100")
    schedule = next(s for s in schedules["items"] if s["name"] == f"{name}-nightly")
    assert (schedule["cron"], schedule["timezone"], schedule["task"]["kind"]) == ("@daily", "Europe/Berlin", "echo")

    # Run now: the task is created at once, runs, and its outcome shows on the schedule's row.
    await listed.get_by_role("button", name=f"Run {name}-nightly now").click()
    await page.locator("#notice", has_text=f"Started “{name}-nightly” now").wait_for()
    await listed.locator(".outcome .badge", has_text="COMPLETED").wait_for()
    await search(page, f"{name}-job")
    await row(page, f"{name}-job").locator(".badge", has_text="COMPLETED").wait_for()
    # The outcome opens its task.
    await listed.locator(".outcome button").click()
    await expect(page.locator("dialog#detail #detail-title")).to_have_text(f"{name}-job")
    await page.keyboard.press("Escape")

    await listed.get_by_role("button", name=f"Disable {name}-nightly").click()
    await expect(listed.locator(".next")).to_have_text("disabled")
    await page.locator("#notice", has_text=f"“{name}-nightly” is disabled.").wait_for()
    assert (await server.get(f"/api/v1/schedules/{schedule['id']}"))["next_run_at"] is None
    await listed.get_by_role("button", name=f"Enable {name}-nightly").click()
    await expect(listed.locator(".next time")).to_have_count(1)
    assert (await server.get(f"/api/v1/schedules/{schedule['id']}"))["enabled"] is True
    await page.locator("#schedules").screenshot(path=SCREENSHOTS / "dashboard-schedules.png")

    await listed.get_by_role("button", name=f"Delete {name}-nightly").click()
    await page.locator("#notice", has_text=f"“{name}-nightly” is deleted").wait_for()
    await expect(listed).to_have_count(0)
    async with server.http.get(f"{server.url}/api/v1/schedules/{schedule['id']}") as resp:
        assert resp.status == 404
    # Its task stays, no longer tied to a schedule.
    await row(page, f"{name}-job").wait_for()
    # The browser logs the create the API refused (422) as a failed load (the form caught "not both"
    # itself); nothing else went wrong.
    assert len(watched.errors) == 1 and "status of 422" in watched.errors[0], watched.errors

"""ctx.progress's checks and the worker's throttle (taskservice.progress), without services."""

import asyncio
import logging
import math
import threading
import uuid

import pytest

from taskservice.handlers import HandlerContext
from taskservice.progress import Reporter, checked


@pytest.mark.parametrize("fraction", [-0.01, 1.01, math.nan, math.inf])
def test_a_fraction_outside_0_to_1_is_a_value_error(fraction):
    with pytest.raises(ValueError, match="from 0 to 1"):
        checked(fraction, None)


@pytest.mark.parametrize(("fraction", "message"), [(True, None), ("0.5", None), (0.5, 3)])
def test_a_fraction_or_message_of_the_wrong_type_is_a_type_error(fraction, message):
    with pytest.raises(TypeError):
        checked(fraction, message)


def test_a_message_longer_than_1000_characters_or_with_nul_is_a_value_error():
    assert checked(1, "x" * 1000) == (1.0, "x" * 1000)
    with pytest.raises(ValueError, match="1001 characters"):
        checked(0.5, "x" * 1001)
    with pytest.raises(ValueError, match="NUL"):
        checked(0.5, "a\x00b")


async def test_ctx_progress_is_awaitable_and_callable_without_await():
    reports = []
    ctx = HandlerContext(uuid.uuid4(), 1, logging.getLogger(), report_progress=lambda *r: reports.append(r))
    assert await ctx.progress(0.5, "half") is None
    ctx.progress(1)
    assert reports == [(0.5, "half"), (1.0, None)]


async def test_reports_are_throttled_the_last_is_written_at_finish_and_none_after():
    written = []

    async def write(fraction, message):
        written.append((fraction, message))
        return True

    reporter = Reporter(write, asyncio.get_running_loop(), interval=0.2)
    for step in range(1, 101):
        reporter.report(step / 100, f"{step}")
        await asyncio.sleep(0.002)
    await reporter.finish()
    assert 1 <= len(written) <= 10, written
    assert written[-1] == (1.0, "100")
    reporter.report(0.1, "after the end")
    await asyncio.sleep(0.05)
    assert written[-1] == (1.0, "100")


async def test_reports_from_another_thread_are_written_on_the_loop():
    written = []

    async def write(fraction, message):
        written.append((fraction, message, threading.current_thread() is threading.main_thread()))
        return True

    reporter = Reporter(write, asyncio.get_running_loop(), interval=0.01)
    thread = threading.Thread(target=lambda: [reporter.report(i / 10, None) for i in range(11)])
    thread.start()
    await asyncio.to_thread(thread.join)
    await reporter.finish()
    assert written[-1] == (1.0, None, True)


async def test_a_write_that_finds_the_attempt_gone_stops_the_reports():
    written = []

    async def write(fraction, message):
        written.append(fraction)
        return False

    reporter = Reporter(write, asyncio.get_running_loop(), interval=0.01)
    reporter.report(0.1, None)
    await asyncio.sleep(0.05)
    reporter.report(0.2, None)
    await reporter.finish()
    assert written == [0.1]

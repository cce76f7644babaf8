"""After-commit wake-ups: the pacing of NOTIFYs and reads, and the put-off announcement of
intermediate status changes."""

import asyncio

from taskservice import wakeups
from taskservice.wakeups import AfterCommit, Pace


async def test_pace_lets_a_burst_through_at_once_then_one_per_interval():
    pace, stop = Pace(interval=0.05, burst=3), asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        assert await pace.turn(stop)
    assert loop.time() - started < 0.03  # the burst did not wait
    assert await pace.turn(stop)
    assert loop.time() - started >= 0.045  # the fourth waited about one interval


async def test_pace_gives_up_its_wait_when_stopped():
    pace, stop = Pace(interval=10.0, burst=1), asyncio.Event()
    assert await pace.turn(stop)
    asyncio.get_running_loop().call_later(0.01, stop.set)
    assert not await asyncio.wait_for(pace.turn(stop), 1)


async def test_set_calls_the_local_hooks_at_once_with_the_earliest_commit_time():
    event, calls = AfterCommit(), []
    event.local.append(calls.append)
    event.soon()
    first = event.committed_at
    await asyncio.sleep(0)
    event.set()  # before the put-off announcement was due
    assert event.is_set() and calls == [first]
    assert event.timer is None  # the put-off one is folded into this one


async def test_soon_sets_the_event_within_the_soon_interval():
    event, calls = AfterCommit(), []
    event.local.append(calls.append)
    event.soon()
    event.soon()  # a second intermediate change joins the first
    assert not event.is_set() and calls == []
    await asyncio.wait_for(event.wait(), wakeups.SOON_SECONDS * 20)
    assert len(calls) == 1


async def test_flush_sends_what_soon_put_off_and_nothing_otherwise():
    event = AfterCommit()
    event.flush()
    assert not event.is_set()
    event.soon()
    event.flush()
    assert event.is_set()


def test_only_a_payload_naming_this_process_is_its_own_echo():
    assert wakeups.is_own_echo("abc", "abc")
    assert not wakeups.is_own_echo("xyz", "abc")  # another process's
    assert not wakeups.is_own_echo(None, "abc")  # LISTEN (re)connected: always acted on
    assert not wakeups.is_own_echo("", "")  # a process without the in-process wake-up


async def test_a_commit_may_announce_itself_only_while_nothing_waits_and_the_pace_has_a_turn():
    event = AfterCommit()
    assert event.quiet() is not None
    event.set()  # an announcement waits for the sending loop
    assert event.quiet() is None
    event.clear()
    for _ in range(wakeups.WAKEUP_BURST):
        event.pace.take()
    assert event.quiet() is None  # the pace's turns are used up


async def test_a_commit_that_announced_itself_drops_what_soon_put_off_before_it():
    event, calls = AfterCommit(), []
    event.local.append(calls.append)
    event.soon()  # a claim's IN_PROGRESS, committed before the completion
    mark = event.quiet()
    event.announced_within(mark)
    assert event.timer is None and not event.is_set()  # nothing left to announce
    assert len(calls) == 1  # this process's own listeners still read at once
    await asyncio.sleep(wakeups.SOON_SECONDS * 2)
    assert not event.is_set()


async def test_a_commit_noted_after_the_mark_is_announced_as_usual():
    event = AfterCommit()
    mark = event.quiet()
    event.soon()  # committed while the self-announcing commit was under way: maybe after it
    event.announced_within(mark)
    assert event.is_set()


async def test_a_self_announcing_commit_takes_a_turn_of_the_pace():
    event = AfterCommit()
    for _ in range(wakeups.WAKEUP_BURST):
        event.announced_within(event.quiet())
    assert event.quiet() is None

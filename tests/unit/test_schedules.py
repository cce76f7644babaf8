"""When schedules fire, on a fixed clock: cron in a time zone across daylight-saving changes,
intervals, macros, invalid specs, and the dispatcher's decision for one due schedule."""

import itertools
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskservice.schedules import InvalidSchedule, Spec, firing, next_fire

BERLIN = ZoneInfo("Europe/Berlin")
# 2026 in Europe/Berlin: clocks jump 02:00 -> 03:00 on 29 March, fall 03:00 -> 02:00 on 25 October.
SPRING_FORWARD = datetime(2026, 3, 29, tzinfo=BERLIN)
FALL_BACK = datetime(2026, 10, 25, tzinfo=BERLIN)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ticks(spec: Spec, start: datetime, end: datetime) -> list[datetime]:
    found, tick = [], next_fire(spec, start)
    while tick < end:
        found.append(tick)
        tick = next_fire(spec, tick)
    return found


def fires_by_local_day(spec: Spec, start: datetime, end: datetime, step: timedelta) -> Counter:
    """Walk a clock from `start` to `end` in `step`s, firing like the dispatcher: when the clock
    reaches next_run_at, fire that tick and move to the first tick after the clock."""
    row = {"id": uuid.uuid4(), "overlap": "allow", "last_task_status": None, "cron": spec.cron,
           "every_seconds": spec.every, "timezone": spec.timezone, "next_run_at": next_fire(spec, start)}
    fired = Counter()
    now = start
    while now < end:
        if row["next_run_at"] <= now:
            decided = firing(row, now)
            fired[decided.fire_at.astimezone(ZoneInfo(spec.timezone)).date()] += 1
            row["next_run_at"] = decided.next_run_at
        now += step
    return fired


def test_a_daily_time_the_clocks_skip_fires_once_that_day_at_the_first_minute_after_it():
    spec = Spec(cron="30 2 * * *", timezone="Europe/Berlin")
    found = ticks(spec, utc(2026, 3, 27, 12), utc(2026, 3, 31, 12))
    local = [t.astimezone(BERLIN) for t in found]
    assert [(t.day, t.hour, t.minute) for t in local] == [(28, 2, 30), (29, 3, 0), (30, 2, 30), (31, 2, 30)]
    assert found[1] == utc(2026, 3, 29, 1, 0)  # 03:00 CEST


def test_a_daily_time_the_clocks_repeat_fires_once_at_its_first_occurrence():
    spec = Spec(cron="30 2 * * *", timezone="Europe/Berlin")
    found = ticks(spec, utc(2026, 10, 23, 12), utc(2026, 10, 27, 12))
    assert found == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30),  # 02:30 CEST
                     utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]  # 02:30 CET


@pytest.mark.parametrize("after", [
    utc(2026, 10, 25, 0, 30),  # the tick itself (the first 02:30)
    utc(2026, 10, 25, 0, 30, 0, 1),
    utc(2026, 10, 25, 1, 0),  # 02:00 again: inside the repeated hour
    utc(2026, 10, 25, 1, 30),  # the second 02:30
    utc(2026, 10, 25, 1, 45),
])
def test_from_inside_a_repeated_hour_the_next_tick_is_the_next_day_never_earlier(after):
    spec = Spec(cron="30 2 * * *", timezone="Europe/Berlin")
    assert next_fire(spec, after) == utc(2026, 10, 26, 1, 30)


@pytest.mark.parametrize(("day", "step"), [(SPRING_FORWARD, timedelta(seconds=7)),
                                           (FALL_BACK, timedelta(seconds=7)),
                                           (SPRING_FORWARD, timedelta(minutes=13)),
                                           (FALL_BACK, timedelta(minutes=13))])
def test_a_clock_walking_through_a_dst_change_fires_a_daily_schedule_once_each_day(day, step):
    spec = Spec(cron="30 2 * * *", timezone="Europe/Berlin")
    start = (day - timedelta(days=2)).astimezone(UTC)
    fired = fires_by_local_day(spec, start, start + timedelta(days=4), step)
    assert set(fired.values()) == {1}, fired
    assert len(fired) == 4 and day.date() in fired


def test_an_hourly_schedule_fires_every_real_hour_across_both_changes():
    spec = Spec(cron="@hourly", timezone="Europe/Berlin")
    spring = ticks(spec, SPRING_FORWARD.astimezone(UTC) - timedelta(seconds=1),
                   (SPRING_FORWARD + timedelta(days=1)).astimezone(UTC) - timedelta(hours=1) + timedelta(seconds=1))
    autumn_start = FALL_BACK.astimezone(UTC) - timedelta(seconds=1)
    autumn = ticks(spec, autumn_start, autumn_start + timedelta(hours=25))
    assert len(spring) == 23 and len(autumn) == 25
    for found in (spring, autumn):
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(found))


@pytest.mark.parametrize(("cron", "expected_local"), [
    ("@hourly", datetime(2026, 6, 10, 13, 0)),
    ("@daily", datetime(2026, 6, 11, 0, 0)),
    ("@midnight", datetime(2026, 6, 11, 0, 0)),
    ("@weekly", datetime(2026, 6, 14, 0, 0)),  # Sunday
    ("@monthly", datetime(2026, 7, 1, 0, 0)),
    ("@yearly", datetime(2027, 1, 1, 0, 0)),
    ("@annually", datetime(2027, 1, 1, 0, 0)),
    ("*/5 * * * *", datetime(2026, 6, 10, 12, 35)),
    ("0 9 * * MON-FRI", datetime(2026, 6, 11, 9, 0)),
])
def test_macros_and_expressions_read_in_the_schedules_time_zone(cron, expected_local):
    after = datetime(2026, 6, 10, 12, 34, 56, tzinfo=BERLIN)  # a Wednesday
    assert next_fire(Spec(cron=cron, timezone="Europe/Berlin"), after) == expected_local.replace(tzinfo=BERLIN)


def test_the_same_expression_in_another_zone_fires_at_another_instant():
    after = utc(2026, 1, 15, 12)
    assert next_fire(Spec(cron="@daily", timezone="UTC"), after) == utc(2026, 1, 16)
    assert next_fire(Spec(cron="@daily", timezone="America/New_York"), after) == utc(2026, 1, 16, 5)


def test_intervals_tick_on_multiples_of_the_period_since_the_epoch_strictly_after():
    assert next_fire(Spec(every=60), utc(2026, 1, 1, 12, 0, 0)) == utc(2026, 1, 1, 12, 1)
    assert next_fire(Spec(every=60), utc(2026, 1, 1, 12, 0, 59, 999999)) == utc(2026, 1, 1, 12, 1)
    assert next_fire(Spec(every=1), utc(2026, 1, 1, 12, 0, 0, 500000)) == utc(2026, 1, 1, 12, 0, 1)
    assert next_fire(Spec(every=3600, timezone="Europe/Berlin"), utc(2026, 3, 29, 0, 30)) == utc(2026, 3, 29, 1)
    every_7 = ticks(Spec(every=7), utc(2026, 1, 1), utc(2026, 1, 1, 0, 1))
    assert all(int(t.timestamp()) % 7 == 0 for t in every_7)
    assert all(b - a == timedelta(seconds=7) for a, b in itertools.pairwise(every_7))


@pytest.mark.parametrize(("spec", "field"), [
    (Spec(cron="61 * * * *"), "cron"),
    (Spec(cron="a b c d e"), "cron"),
    (Spec(cron="* * * *"), "cron"),
    (Spec(cron="0 * * * * *"), "cron"),  # no seconds field
    (Spec(cron="@sometimes"), "cron"),
    (Spec(cron="0 0 30 2 *"), "cron"),  # never fires
    (Spec(cron="*/0 * * * *"), "cron"),
    (Spec(cron="@daily", timezone="Mars/Olympus_Mons"), "timezone"),
    (Spec(cron="@daily", timezone="../../etc/passwd"), "timezone"),
    (Spec(cron="@daily", timezone=""), "timezone"),
])
def test_a_spec_that_cannot_make_ticks_names_its_field(spec, field):
    with pytest.raises(InvalidSchedule) as raised:
        next_fire(spec, utc(2026, 1, 1))
    assert raised.value.field == field
    assert str(raised.value)


def due_row(**fields) -> dict:
    return {"id": uuid.uuid4(), "overlap": "allow", "last_task_status": None, "cron": None,
            "every_seconds": 60, "timezone": "UTC", **fields}


def test_ticks_missed_while_no_dispatcher_ran_fire_once_then_the_next_is_after_now():
    decided = firing(due_row(next_run_at=utc(2026, 1, 1, 9, 0)), utc(2026, 1, 1, 12, 0, 30))
    assert decided.fire_at == utc(2026, 1, 1, 9, 0)
    assert decided.next_run_at == utc(2026, 1, 1, 12, 1)


@pytest.mark.parametrize(("overlap", "last_status", "fires"), [
    ("skip", status, status in ("COMPLETED", "FAILED", "CANCELLED", None))
    for status in ("NEW", "PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", None)
] + [("allow", status, True) for status in ("NEW", "PENDING", "IN_PROGRESS", "COMPLETED", None)])
def test_overlap_skip_passes_a_tick_while_the_last_task_is_unfinished(overlap, last_status, fires):
    decided = firing(due_row(overlap=overlap, last_task_status=last_status, next_run_at=utc(2026, 1, 1, 12)),
                     utc(2026, 1, 1, 12, 0, 1))
    assert decided.fire_at == (utc(2026, 1, 1, 12) if fires else None)
    assert decided.next_run_at == utc(2026, 1, 1, 12, 1)  # advanced either way

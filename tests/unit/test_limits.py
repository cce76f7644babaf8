"""Which limits a worker declares: its handlers', overridden per kind by the settings."""

from taskservice import limits
from taskservice.handlers import load_registry
from taskservice.kinds import Rate
from taskservice.settings import Settings


def test_limits_come_from_the_handlers_then_the_settings():
    registry = load_registry(["tests.support.handlers_for_tests"])
    declared = limits.declared(registry, Settings(
        kind_concurrency=(("twenty_a_second", 3), ("elsewhere", 1)), kind_rate=(("two_at_a_time", Rate(5, 60)),)))
    assert {name: declared[name] for name in ("two_at_a_time", "twenty_a_second", "elsewhere", "gated_pair")} == {
        "two_at_a_time": limits.Limit(2, Rate(5, 60)),
        "twenty_a_second": limits.Limit(3, Rate(20, 1)),
        "elsewhere": limits.Limit(1, None),
        "gated_pair": limits.Limit(2, None),
    }
    assert "echo" not in declared and "noop" not in declared
    assert limits.describe({"a": limits.Limit(2, Rate(100, 60)), "b": limits.Limit(None, Rate(5, 1))}) == \
        "a (concurrency 2, rate 100/m), b (rate 5/s)"

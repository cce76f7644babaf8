"""`taskservice --help` lists every environment setting with its default and meaning, from settings.py."""

import dataclasses
import subprocess
import sys

import pytest

from taskservice.settings import ENVIRONMENT, Settings, load_settings
from tests.support.services import ROOT


class RecordingEnv(dict):
    """An empty environment that remembers every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)


def test_the_help_table_lists_exactly_what_load_settings_reads():
    env = RecordingEnv()
    load_settings(env)
    assert env.asked == set(ENVIRONMENT)
    assert {attribute for attribute, _ in ENVIRONMENT.values()} == {f.name for f in dataclasses.fields(Settings)}


def a_value_other_than(default):
    """An accepted value for the setting whose default is `default`, different from it."""
    if isinstance(default, bool):
        return str(not default).lower()
    if isinstance(default, int | float):
        return str(default + 1)
    return "x"


SPECIAL_VALUES = {"LOG_LEVEL": "debug", "LOG_FORMAT": "json", "KIND_CONCURRENCY": "x=2", "KIND_RATE": "x=5/s"}


@pytest.mark.parametrize("name", sorted(ENVIRONMENT))
def test_each_name_sets_the_field_the_table_says(name):
    attribute = ENVIRONMENT[name][0]
    defaults = Settings(worker_id="fixed")
    value = SPECIAL_VALUES.get(name) or a_value_other_than(getattr(defaults, attribute))
    loaded = load_settings({"WORKER_ID": "fixed", name: value})
    changed = {f.name for f in dataclasses.fields(Settings) if getattr(loaded, f.name) != getattr(defaults, f.name)}
    assert changed == {attribute}


def test_help_lists_every_setting_with_its_default_and_meaning():
    result = subprocess.run([sys.executable, "-m", "taskservice", "--help"], cwd=ROOT, capture_output=True,
                            text=True, check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    lines = result.stdout.splitlines()
    for name, (_, meaning) in ENVIRONMENT.items():
        [at] = [i for i, line in enumerate(lines) if line.startswith(f"  {name}=")]
        assert lines[at + 1].strip() == meaning
    assert "  PORT=8000" in lines
    assert "  DISPATCHER_EMBEDDED=true" in lines
    assert "  WORKER_ID=<hostname>-<pid>" in lines
    assert "docs/operations.md" in result.stdout

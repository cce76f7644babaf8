"""Every file under sql/ against the migrated schema: it prepares (one statement that PostgreSQL
accepts), its header says what it does, and the `$n` its header names are exactly the parameters
the statement takes."""

import re

import pytest

from taskservice.sql import QUERIES

# A header is the file's leading comment lines: purpose line(s), then its parameters, from the
# first line that starts with `$1` (or says there are none) to the end of the header.
PARAMETERS_START = re.compile(r"^(\$1 |\(no parameters\)$)")
PARAMETER = re.compile(r"\$(\d+)\b")


def header(sql: str) -> list[str]:
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line.removeprefix("--").strip())
    return lines


def split_header(sql: str) -> tuple[list[str], list[str]]:
    """(purpose lines, parameter lines)."""
    lines = header(sql)
    start = next((i for i, line in enumerate(lines) if PARAMETERS_START.match(line)), len(lines))
    return lines[:start], lines[start:]


def named_parameters(parameter_lines: list[str]) -> list[int]:
    return [int(n) for line in parameter_lines for n in PARAMETER.findall(line)]


@pytest.mark.parametrize("name", sorted(QUERIES))
async def test_the_header_names_exactly_the_parameters_the_statement_takes(pool, name):
    sql = QUERIES[name]
    purpose, parameters = split_header(sql)
    assert purpose and all(purpose), f"{name}: the header must open with what the statement does"
    assert parameters, f"{name}: the header must end with its parameters, `-- $1 ...` or `-- (no parameters)`"
    async with pool.acquire() as conn:
        taken = len((await conn.prepare(sql)).get_parameters())
    if taken == 0:
        assert parameters == ["(no parameters)"], f"{name}: takes no parameters, header says {parameters}"
    else:
        assert named_parameters(parameters) == list(range(1, taken + 1)), (
            f"{name}: takes ${taken} parameters, in order, and the header's parameter lines "
            f"name {named_parameters(parameters)}")


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_plan_notes_live_in_the_design_doc(name):
    """A file keeps its comments to purpose, parameters and guard; one line points to the
    reasoning about its plan."""
    pointers = [line for line in header(QUERIES[name]) if line.startswith("Plan:")]
    assert pointers in ([], ['Plan: see docs/design.md, "Query plans".']) or (
        len(pointers) == 1 and pointers[0].startswith('Plan: see docs/design.md, "Query plans" (')), pointers
    body = "\n".join(line for line in QUERIES[name].splitlines() if not line.startswith("--"))
    assert "--" not in body or all(
        len(line.split("--", 1)[1]) <= 80 for line in body.splitlines() if "--" in line), (
        f"{name}: a comment inside the statement is a few words on the line that needs them")


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_no_guard_accepts_statuses_by_exclusion(name):
    """`status NOT IN (...)` or `status <> ...` silently accepts a status added later: guards
    name the statuses they accept."""
    body = "\n".join(line for line in QUERIES[name].splitlines() if not line.startswith("--"))
    assert not re.search(r"status\s*(NOT\s+IN|<>|!=)", body, re.IGNORECASE), name


def test_a_wrong_header_is_caught():
    """The checks above can fail: a header naming a parameter the statement lacks, or
    missing one it takes, does not match."""
    sql = "-- One task.\n-- $1 task id, $2 unused\nSELECT * FROM tasks WHERE id = $1 AND name = $3;"
    _, parameters = split_header(sql)
    assert named_parameters(parameters) != [1, 2, 3]
    assert split_header("-- One task.\nSELECT 1;") == (["One task."], [])

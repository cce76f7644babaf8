"""The pgbench scripts `make bench` builds from the sql/ files: every $n has a value, so a change to a
statement's parameters fails here instead of in the middle of a benchmark run."""

import re

from bench import ceiling


def test_the_ceiling_scripts_fill_every_parameter():
    for name, text in (("create", ceiling.script()), ("batch", ceiling.batch_script(3)),
                       ("lifecycle", ceiling.lifecycle_script())):
        assert not re.search(r"\$\d+\b", text), (name, text)

"""Integration tests talk to a real PostgreSQL and RabbitMQ: check both are there before any test runs."""

import pytest

from tests.support.services import require_services


@pytest.fixture(scope="session", autouse=True)
def services_reachable() -> None:
    require_services()

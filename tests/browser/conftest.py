"""Browser tests drive the dashboard of a running service: PostgreSQL and RabbitMQ must be there."""

import pytest

from tests.support.services import require_services


@pytest.fixture(scope="session", autouse=True)
def services_reachable() -> None:
    require_services()

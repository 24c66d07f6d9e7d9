"""Routing fixtures: every test starts with healthy upstreams and no account policies.

Slot health is shared state that outlives a request on purpose (a failing provider is skipped
by the next request); between tests it must not, or one test's injected 5xx would make the
next test's only provider look unhealthy.
"""

from collections.abc import Iterator

import pytest

from routing.health import reset_health
from routing.policies import reset_policies


@pytest.fixture(autouse=True)
def fresh_routing_state() -> Iterator[None]:
    reset_health()
    reset_policies()
    yield
    reset_health()

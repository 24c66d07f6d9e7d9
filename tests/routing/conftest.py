from collections.abc import Iterator

import pytest

from routing.demo_upstream import DemoConfig, DemoUpstream


@pytest.fixture
def demo_upstream() -> Iterator[DemoUpstream]:
    """A live demo upstream on 127.0.0.1; change `.config` to inject faults."""
    with DemoUpstream(DemoConfig()) as server:
        yield server

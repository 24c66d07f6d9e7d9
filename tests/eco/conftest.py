from datetime import date
from decimal import Decimal

import pytest

from eco.estimate import EcoContext, load_eco_context
from eco.models import GridRegion

# The shipped Ember/OWID 2023 averages count as current until the end of 2024.
FRESH_DAY = date(2024, 6, 1)
STALE_DAY = date(2025, 1, 1)


@pytest.fixture
def example_region(db: None) -> GridRegion:
    """The methodology page's worked-example grid: 340 g/kWh."""
    return GridRegion.objects.create(
        code="example", label="Worked example", g_per_kwh=Decimal("340"), accuracy="accurate"
    )


@pytest.fixture
def fresh_ctx(db: None, example_region: GridRegion) -> EcoContext:
    return load_eco_context(today=FRESH_DAY)


@pytest.fixture
def stale_ctx(db: None, example_region: GridRegion) -> EcoContext:
    return load_eco_context(today=STALE_DAY)

from datetime import date
from decimal import Decimal

import pytest

from billing.models import VatRate, VatTreatment
from billing.vat import (
    InvalidVatNumber,
    ViesRestChecker,
    ViesUnavailable,
    compute_vat_cents,
    decide_vat,
    normalise_vat_number,
)
from tests.billing.payments_helpers import FakeVies

TODAY = date(2026, 3, 1)
pytestmark = pytest.mark.django_db


def test_all_27_member_states_have_a_rate() -> None:
    assert VatRate.objects.values("country").distinct().count() == 27


def test_french_consumer_pays_french_vat() -> None:
    d = decide_vat(country="FR", vat_number="", on=TODAY)
    assert (d.treatment, d.rate) == (VatTreatment.DOMESTIC, Decimal("20.00"))


def test_eu_consumer_pays_their_countrys_rate() -> None:
    d = decide_vat(country="de", vat_number="", on=TODAY)
    assert (d.treatment, d.rate) == (VatTreatment.EU_CONSUMER, Decimal("19.00"))


def test_rate_follows_the_dated_table() -> None:
    assert decide_vat(country="EE", vat_number="", on=date(2025, 6, 30)).rate == Decimal("22")
    assert decide_vat(country="EE", vat_number="", on=date(2025, 7, 1)).rate == Decimal("24")
    assert decide_vat(country="FI", vat_number="", on=TODAY).rate == Decimal("25.5")


def test_a_rate_change_is_a_new_row_not_code() -> None:
    VatRate.objects.create(country="DE", rate=Decimal("21"), valid_from=date(2027, 1, 1))
    assert decide_vat(country="DE", vat_number="", on=TODAY).rate == Decimal("19")
    assert decide_vat(country="DE", vat_number="", on=date(2027, 1, 2)).rate == Decimal("21")


def test_eu_business_with_vies_confirmed_number_is_reverse_charged(fake_vies: FakeVies) -> None:
    fake_vies.valid = {"DE136695976"}
    d = decide_vat(country="DE", vat_number="DE 136 695 976", on=TODAY)
    assert (d.treatment, d.rate, d.vat_number) == (
        VatTreatment.REVERSE_CHARGE,
        Decimal("0"),
        "DE136695976",
    )
    assert "Reverse charge" in d.mention
    assert fake_vies.calls == ["DE136695976"]


def test_number_unknown_to_vies_pays_consumer_vat(fake_vies: FakeVies) -> None:
    d = decide_vat(country="DE", vat_number="DE136695976", on=TODAY)
    assert d.treatment == VatTreatment.EU_CONSUMER
    assert fake_vies.calls == ["DE136695976"]


def test_vies_down_charges_vat_provisionally(fake_vies: FakeVies) -> None:
    fake_vies.valid = {"NL004495445B01"}
    fake_vies.user_error = "MS_UNAVAILABLE"
    d = decide_vat(country="NL", vat_number="NL004495445B01", on=TODAY)
    assert (d.treatment, d.rate) == (VatTreatment.EU_CONSUMER, Decimal("21"))
    assert fake_vies.calls == ["NL004495445B01"]


def test_vies_answering_an_http_error_charges_vat_provisionally(fake_vies: FakeVies) -> None:
    fake_vies.valid = {"NL004495445B01"}
    fake_vies.status = 503
    d = decide_vat(country="NL", vat_number="NL004495445B01", on=TODAY)
    assert (d.treatment, d.rate) == (VatTreatment.EU_CONSUMER, Decimal("21"))
    assert fake_vies.calls == ["NL004495445B01"]


def test_the_vies_client_raises_unavailable_when_vies_cannot_say(fake_vies: FakeVies) -> None:
    checker = ViesRestChecker()
    fake_vies.valid = {"DE136695976"}
    assert checker.check(country="DE", number="136695976")
    assert not checker.check(country="DE", number="999999999")
    fake_vies.user_error = "MS_MAX_CONCURRENT_REQ"
    with pytest.raises(ViesUnavailable):
        checker.check(country="DE", number="136695976")


def test_french_business_pays_french_vat_without_asking_vies(fake_vies: FakeVies) -> None:
    fake_vies.valid = {"FR61954506077"}
    d = decide_vat(country="FR", vat_number="FR61954506077", on=TODAY)
    assert (d.treatment, d.rate) == (VatTreatment.DOMESTIC, Decimal("20"))
    assert fake_vies.calls == []


def test_outside_eu_pays_no_vat() -> None:
    d = decide_vat(country="US", vat_number="", on=TODAY)
    assert (d.treatment, d.rate) == (VatTreatment.OUTSIDE_EU, Decimal("0"))


def test_badly_formed_vat_number_is_rejected() -> None:
    with pytest.raises(InvalidVatNumber):
        decide_vat(country="FR", vat_number="FR61954506078", on=TODAY)


def test_greek_numbers_use_the_vies_prefix_el(fake_vies: FakeVies) -> None:
    assert normalise_vat_number("GR094259216") == "EL094259216"
    fake_vies.valid = {"EL094259216"}
    d = decide_vat(country="GR", vat_number="GR094259216", on=TODAY)
    assert d.treatment == VatTreatment.REVERSE_CHARGE
    assert fake_vies.calls == ["EL094259216"]


def test_vat_is_rounded_half_up_to_the_cent() -> None:
    assert compute_vat_cents(2080, Decimal("20")) == 416
    assert compute_vat_cents(1005, Decimal("25.5")) == 256  # 256.275
    assert compute_vat_cents(1, Decimal("50")) == 1  # 0.5 -> 1

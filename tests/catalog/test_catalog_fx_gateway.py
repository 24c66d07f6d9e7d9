"""End to end: a dead FX feed soft-disables non-EUR offerings at the gateway, EUR keeps working,
and a good ingest brings them back without an operator."""

from decimal import Decimal

import httpx

from billing.models import Generation
from catalog.fx import oldest_fresh_ecb_date
from catalog.fx_ingest import ingest_fx
from catalog.models import Currency
from tests.conftest import add_model, add_offering, add_provider

USD_BODY = {"model": "usd/model", "messages": [{"role": "user", "content": "hi"}]}
EUR_BODY = {"model": "demo/echo-small", "messages": [{"role": "user", "content": "hi"}]}


def _post(gateway, token, body):
    return httpx.post(
        gateway.api + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_stale_fx_soft_disables_usd_offerings_until_a_good_ingest(
    gateway, catalogue, funded, upstream, feed
):
    provider = add_provider("usdprov", upstream.base_url, currency=Currency.USD)
    model = add_model("usd/model")
    add_offering(
        model, provider, region="us-east", prompt=Decimal("0.15"), completion=Decimal("0.60")
    )
    feed.serve("/eurofxref-hist-90d.xml", b"", status=503)
    assert not ingest_fx().ok

    refused = _post(gateway, funded.token, USD_BODY)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "fx_unavailable"
    assert _post(gateway, funded.token, EUR_BODY).status_code == 200
    listed = httpx.get(gateway.api + "/models/usd/model").json()
    assert listed["offerings"][0]["unavailable_reason"] == "fx_unavailable"

    feed.serve_rates({oldest_fresh_ecb_date(): {"USD": "1.0800"}})
    assert ingest_fx().ok
    served = _post(gateway, funded.token, USD_BODY)
    assert served.status_code == 200, served.text
    gen = Generation.objects.get(pk=served.json()["lowrouter"]["generation_id"])
    # 0.15 USD x max(1/1.08, floor 1.0) x 1.03 buffer = 0.1545 EUR per 1M.
    assert gen.prompt_price_eur == Decimal("0.154500")

"""The admin index warns about upstreams that answered past their bound in the last 7 days."""

from datetime import timedelta

from django.utils import timezone

from routing.models import UpstreamOverrun


def incident(provider: str, unbilled: int, age: timedelta = timedelta(hours=1)) -> None:
    UpstreamOverrun.objects.create(
        created_at=timezone.now() - age,
        generation_id="gen_x",
        provider=provider,
        region="local",
        model="demo/echo-small",
        bound_tokens=20,
        completion_tokens=20_000,
        unbilled_micros=unbilled,
    )


def test_the_admin_index_names_each_provider_that_overran_this_week(admin_client):
    incident("acme", 4_500_000)
    incident("acme", 500_000)
    incident("oldco", 9_000_000, age=timedelta(days=8))
    page = admin_client.get("/admin/").content.decode()
    assert "beyond the output-token bound" in page
    assert "acme: 2 response(s), 5.000000 credits unbilled" in page
    assert "oldco" not in page


def test_no_banner_without_a_recent_overrun(admin_client):
    incident("oldco", 9_000_000, age=timedelta(days=8))
    page = admin_client.get("/admin/").content.decode()
    assert "beyond the output-token bound" not in page
    listing = admin_client.get("/admin/routing/upstreamoverrun/")
    assert listing.status_code == 200 and "oldco" in listing.content.decode()

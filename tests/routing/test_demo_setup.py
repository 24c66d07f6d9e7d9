"""`make run`'s demo_setup: the demo account gets a web password, printed and rotated on every
start like its API key, so a newcomer can open the console."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def run_demo_setup() -> tuple[str, str]:
    out = StringIO()
    call_command("demo_setup", base_url="http://127.0.0.1:8000", stdout=out)
    printed = out.getvalue()
    password = re.search(r"demo@lowrouter\.local / (\S+),", printed)
    token = re.search(r"Demo API key\s+: (\S+)", printed)
    assert password and token, printed
    return password.group(1), token.group(1)


def test_the_demo_account_signs_in_with_the_printed_web_password_rotated_each_start(
    client: Client,
) -> None:
    first_password, first_token = run_demo_setup()
    password, token = run_demo_setup()
    assert password != first_password and token != first_token

    stale = client.post(
        "/accounts/login/", {"login": "demo@lowrouter.local", "password": first_password}
    )
    assert stale.status_code == 200 and "_auth_user_id" not in client.session
    signed_in = client.post(
        "/accounts/login/", {"login": "demo@lowrouter.local", "password": password}
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/dashboard"
    dashboard = client.get("/dashboard").content.decode()
    assert "demo@lowrouter.local" in dashboard and "500.00" in dashboard

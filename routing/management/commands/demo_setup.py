import secrets
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from accounts.models import User
from billing.ledger import ledger_sum
from billing.onboarding import create_account
from catalog.models import Provider
from catalog.snapshot import mark_catalog_changed
from keys.actions import create_key, revoke_key
from keys.models import ApiKey

DEMO_EMAIL = "demo@lowrouter.local"
ADMIN_EMAIL = "admin@lowrouter.local"
DEMO_KEY_NAME = "demo-key"
DEMO_CREDITS = Decimal("500")


class Command(BaseCommand):
    help = (
        "Idempotently prepare the local demo: an operator login, a funded demo account with a "
        "web password and a fresh API key. Passwords and tokens are never stored in clear, so "
        "each run rotates them and prints the new ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--demo-upstream",
            default="",
            help="Point the `demo` provider at this URL (e.g. http://127.0.0.1:8100/v1).",
        )

    def handle(self, *args: object, **opts: object) -> None:
        if opts["demo_upstream"]:
            Provider.objects.filter(id="demo").update(base_url=str(opts["demo_upstream"]))
            mark_catalog_changed()
        admin_password = secrets.token_urlsafe(12)
        admin = User.objects.filter(email=ADMIN_EMAIL).first()
        if admin is None:
            admin = User.objects.create_superuser(email=ADMIN_EMAIL, password=admin_password)
        else:
            admin.set_password(admin_password)
            admin.save(update_fields=["password"])
        create_account(email=ADMIN_EMAIL, verified=True)

        demo = User.objects.filter(email=DEMO_EMAIL).first()
        # Credits are granted once, on first creation; later runs keep the balance as it is.
        demo = create_account(
            email=DEMO_EMAIL,
            credits=DEMO_CREDITS if demo is None else Decimal(0),
            verified=True,
            reason="demo account credit",
        )
        # A web password too, so a newcomer can open the console and see the demo's usage.
        web_password = secrets.token_urlsafe(12)
        demo.set_password(web_password)
        demo.save(update_fields=["password"])
        for old in ApiKey.objects.filter(account=demo, name=DEMO_KEY_NAME, revoked_at=None):
            revoke_key(old)
        _, token = create_key(account=demo, name=DEMO_KEY_NAME)

        base = str(opts["base_url"]).rstrip("/")
        balance = Decimal(ledger_sum(demo)) / 1_000_000
        self.stdout.write(
            f"""
LowRouter demo is ready (database: {settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]}).

  Operator console : {base}/admin/
                     {ADMIN_EMAIL} / {admin_password}
                     (first asks you to set up an authenticator app: staff who can
                     move money use the admin with two-factor authentication)
  Demo account     : {base}/accounts/login/
                     {DEMO_EMAIL} / {web_password}, {balance:.2f} credits
  Demo API key     : {token}
                     (both shown once; `make run` rotates them on every start)

Try it (the `demo` provider is a local echo server, not a language model):

curl {base}/api/v1/chat/completions \\
  -H "Authorization: Bearer {token}" \\
  -H "Content-Type: application/json" \\
  -d '{{"model": "demo/echo-small", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
"""
        )

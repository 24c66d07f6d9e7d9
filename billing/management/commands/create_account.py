from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.onboarding import create_account


class Command(BaseCommand):
    help = "Create an account (idempotent), optionally granting credits and marking it verified."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--credits", default="0", help="Credits to grant (1 credit = EUR 0.01)")
        parser.add_argument("--verified", action="store_true")
        parser.add_argument("--password", default=None)

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            credits = Decimal(str(opts["credits"]))
        except InvalidOperation as exc:
            raise CommandError(f"--credits must be a number, got {opts['credits']!r}") from exc
        if not credits.is_finite() or credits < 0:
            raise CommandError("--credits must be a non-negative number.")
        user = create_account(
            email=str(opts["email"]),
            password=opts["password"],
            credits=credits,
            verified=bool(opts["verified"]),
        )
        self.stdout.write(f"account {user.email} (id {user.pk}) ready")

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from keys.actions import KeyPolicyError, create_key


def _credits(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise CommandError(f"Not a number of credits: {value!r}") from exc


class Command(BaseCommand):
    help = "Create an API key for an account and print the token alone on stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", required=True)
        parser.add_argument("--models", default="", help="Comma-separated model allowlist.")
        parser.add_argument("--region", default="")
        parser.add_argument("--daily-limit", type=_credits, default=None)
        parser.add_argument("--monthly-limit", type=_credits, default=None)
        parser.add_argument("--expires-at", type=datetime.fromisoformat, default=None)
        parser.add_argument("--prefer-low-carbon", action="store_true")
        parser.add_argument("--disabled", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = User.objects.filter(email=str(opts["email"]).lower()).first()
        if user is None:
            raise CommandError(f"No account with email {opts['email']!r}.")
        try:
            _, token = create_key(
                account=user,
                name=str(opts["name"]),
                models=[m.strip() for m in str(opts["models"]).split(",") if m.strip()],
                region=str(opts["region"]),
                daily_credit_limit=opts["daily_limit"],
                monthly_credit_limit=opts["monthly_limit"],
                expires_at=opts["expires_at"],
                prefer_low_carbon=bool(opts["prefer_low_carbon"]),
                enabled=not opts["disabled"],
            )
        except KeyPolicyError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(token)

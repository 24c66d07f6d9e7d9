"""Check the daily usage aggregates against the generation records, and repair them on ask."""

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.usage import reconcile_daily_usage


class Command(BaseCommand):
    help = "Compare the daily usage aggregates with the records of the same days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="first UTC day (YYYY-MM-DD); default: 30 days ago")
        parser.add_argument("--until", help="last UTC day (YYYY-MM-DD); default: today")
        parser.add_argument("--account", type=int, help="one account id only")
        parser.add_argument("--fix", action="store_true", help="rewrite the slices that differ")

    def handle(self, *args: object, **options: object) -> None:
        today = timezone.now().date()
        first = _day(options["since"], today - timedelta(days=30))
        last = _day(options["until"], today)
        if first > last:
            raise CommandError("--since is after --until.")
        mismatches = reconcile_daily_usage(
            first=first,
            last=last,
            account_id=int(str(options["account"])) if options["account"] else None,
            fix=bool(options["fix"]),
        )
        for m in mismatches:
            self.stdout.write(f"differs: {m.slice}: records {m.records}, aggregate {m.aggregate}")
        verb = "repaired" if options["fix"] else "found"
        self.stdout.write(f"{first}..{last}: {len(mismatches)} slice(s) differing {verb}.")
        if mismatches and not options["fix"]:
            raise CommandError("The aggregates differ from the records (run with --fix).")


def _day(raw: object, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(str(raw))
    except ValueError as exc:
        raise CommandError(f"Not a date: {raw!r} (use YYYY-MM-DD).") from exc

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.catalogue import CatalogueError
from catalog.catalogue_sync import sync_catalogue


class Command(BaseCommand):
    help = "Upsert providers, models and offerings from a catalogue file (idempotent)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            default=None,
            help="Catalogue file (YAML or JSON); default: settings.LOWROUTER_CATALOGUE_FILE",
        )
        parser.add_argument(
            "--approve-prices",
            action="store_true",
            help="Apply price changes above the approval threshold instead of holding them.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"] or settings.LOWROUTER_CATALOGUE_FILE
        try:
            report = sync_catalogue(path, approve_prices=options["approve_prices"])
        except CatalogueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.summary())

from typing import Any

from django.core.management.base import BaseCommand

from catalog.fx_ingest import ingest_fx


class Command(BaseCommand):
    help = "Fetch the ECB reference rates now (the daily task does the same)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = ingest_fx()
        if result.ok:
            self.stdout.write(
                f"ECB rates of {result.newest_ecb_date} from {result.url}: "
                f"{result.rates_stored} new rate(s) stored."
            )
        if result.stale_currencies:
            self.stderr.write(
                f"FX_INGEST_STALE: no usable rate for {', '.join(result.stale_currencies)}"
                + (f" ({result.error})" if result.error else "")
            )

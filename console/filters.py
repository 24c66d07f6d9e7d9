"""The console's filters, read from the URL so that a link reproduces the view.

Every widget of the dashboard reads the same ``Filters``; a value that does not parse is
dropped with a message shown above the page (never an error page), and the rest still apply.
"""

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from urllib.parse import urlencode

from django.http import QueryDict

from billing.models import GenerationStatus

DEFAULT_DAYS = 30
MAX_DAYS = 400  # a little over the 13 months the records are kept
SORTS = {
    "time": "created_at",
    "model": "resolved_model",
    "tokens": "total_tokens",
    "cost": "cost_micros",
    "latency": "latency_ms",
}


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    model: str = ""
    key: int | None = None
    # The transactions table's own filters (the charts ignore them).
    provider: str = ""
    region: str = ""
    status: str = ""
    sort: str = "-time"
    errors: tuple[str, ...] = field(default=(), compare=False)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def order_by(self) -> tuple[str, str]:
        name = self.sort.lstrip("-")
        column = SORTS[name]
        direction = "-" if self.sort.startswith("-") else ""
        return (direction + column, "-created_at" if column != "created_at" else "-id")

    def query(self, **changes: object) -> str:
        """This view's URL parameters with ``changes`` applied (None removes one)."""
        values: dict[str, object] = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "model": self.model,
            "key": self.key,
            "provider": self.provider,
            "region": self.region,
            "status": self.status,
            "sort": self.sort if self.sort != "-time" else "",
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    @property
    def hidden_chart_params(self) -> list[tuple[str, str]]:
        """The page-level filters, carried through the table's own filter form."""
        out = [("start", self.start.isoformat()), ("end", self.end.isoformat())]
        if self.model:
            out.append(("model", self.model))
        if self.key is not None:
            out.append(("key", str(self.key)))
        return out

    def sorted_by(self, column: str) -> str:
        """The URL that sorts by ``column``: descending first, ascending on a second click."""
        return self.query(sort=column if self.sort == "-" + column else "-" + column)

    def without_table_filters(self) -> "Filters":
        return replace(self, provider="", region="", status="", sort="-time")


def _day(raw: str, name: str, errors: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(f"The {name} date '{raw[:20]}' is not a date (YYYY-MM-DD); ignored.")
        return None


def _text(raw: str, limit: int) -> str:
    """Free text from the URL: printable, bounded (it is only ever compared, never trusted)."""
    return raw[:limit] if raw.isprintable() else ""


def parse_filters(params: QueryDict, *, today: date) -> Filters:
    errors: list[str] = []
    end = _day(params.get("end", ""), "end", errors) or today
    start = _day(params.get("start", ""), "start", errors) or end - timedelta(days=DEFAULT_DAYS - 1)
    if end > today:
        end = today
    if start > end:
        errors.append("The start date was after the end date; showing the end date only.")
        start = end
    if (end - start).days >= MAX_DAYS:
        errors.append(f"Ranges are at most {MAX_DAYS} days; the start was moved.")
        start = end - timedelta(days=MAX_DAYS - 1)
    key = None
    raw_key = params.get("key", "")
    if raw_key:
        if raw_key.isdigit() and len(raw_key) < 19:
            key = int(raw_key)
        else:
            errors.append("The key filter is not a key id; ignored.")
    status = params.get("status", "")
    if status and status not in GenerationStatus.values:
        errors.append("Unknown status filter; ignored.")
        status = ""
    sort = params.get("sort", "") or "-time"
    if sort.lstrip("-") not in SORTS:
        errors.append("Unknown sort; showing newest first.")
        sort = "-time"
    return Filters(
        start=start,
        end=end,
        model=_text(params.get("model", ""), 200),
        key=key,
        provider=_text(params.get("provider", ""), 64),
        region=_text(params.get("region", ""), 32),
        status=status,
        sort=sort,
        errors=tuple(errors),
    )

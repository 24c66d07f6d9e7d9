from django import template

from console import charts, formatting
from console.filters import Filters

register = template.Library()

register.filter("credits", formatting.credits)
register.filter("tokens", formatting.tokens)
register.filter("eco", formatting.eco)


@register.filter
def percent(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


@register.filter
def query_with(f: Filters, model: str) -> str:
    """This view's URL parameters, filtered to ``model`` (a bar of the usage-today widget)."""
    return f.query(model=model)


@register.filter
def query_sorted(f: Filters, column: str) -> str:
    return f.sorted_by(column)


@register.simple_tag
def swatch(index: int) -> str:
    return charts.swatch(index)

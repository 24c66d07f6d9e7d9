"""Emails about an account's money: the low-balance alert, once each time a balance falls below
the customer's threshold, and the monthly usage summary.

Checked by a periodic task rather than at settlement, so the request path pays nothing for it.
``low_balance_alerted`` makes it once per crossing: set when the email goes, cleared when the
balance is back at or above the threshold (a top-up), so the next fall alerts again.
"""

import logging
from datetime import date, timedelta

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from accounts.models import Preferences, User
from billing.models import DailyUsage, Wallet
from billing.money import credits_to_micros, format_credits

log = logging.getLogger(__name__)


def send_low_balance_alerts() -> int:
    """Email every account newly below its threshold; re-arm those back above it."""
    sent = 0
    watched = Preferences.objects.filter(low_balance_threshold__isnull=False).select_related(
        "account"
    )
    balances = dict(
        Wallet.objects.filter(account_id__in=watched.values("account_id")).values_list(
            "account_id", "balance_micros"
        )
    )
    for prefs in watched:
        assert prefs.low_balance_threshold is not None  # the query only returns those
        balance = balances.get(prefs.account_id, 0)
        below = balance < credits_to_micros(prefs.low_balance_threshold)
        if below and not prefs.low_balance_alerted:
            sent += _alert(prefs, balance)
        elif not below and prefs.low_balance_alerted:
            Preferences.objects.filter(pk=prefs.pk).update(low_balance_alerted=False)
    return sent


def _alert(prefs: Preferences, balance_micros: int) -> int:
    with transaction.atomic():
        # Claim first: two workers running the task at once send one email.
        claimed = Preferences.objects.filter(pk=prefs.pk, low_balance_alerted=False).update(
            low_balance_alerted=True
        )
        if not claimed:
            return 0
        send_mail(
            subject="[LowRouter] Your credit balance is low",
            message=(
                f"Your LowRouter balance is {format_credits(balance_micros)} credits, below the "
                f"{prefs.low_balance_threshold} credits you asked to be told about.\n\n"
                "Add credits from the Credits page of your dashboard. You can change this alert"
                " in Settings > Notifications.\n"
            ),
            from_email=None,
            recipient_list=[prefs.account.email],
        )
    log.info("low-balance alert sent to account %s", prefs.account_id)
    return 1


def send_monthly_summaries(*, today: date | None = None) -> int:
    """On and after the 1st, email each account that used the gateway last month (and did not
    turn the summary off) its totals for that month, once: ``monthly_summary_sent_for`` claims
    the month before the email goes."""
    today = today or timezone.now().date()
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    usage = (
        DailyUsage.objects.filter(day__gte=last_month, day__lt=this_month)
        .values("account_id")
        .annotate(
            requests=Sum("requests"),
            tokens=Sum(F("prompt_tokens") + F("completion_tokens")),
            cost=Sum("cost_micros"),
            carbon=Sum("carbon_g"),
        )
    )
    sent = 0
    for row in usage:
        prefs = Preferences.of(row["account_id"])
        if not prefs.monthly_summary:
            continue
        claimed = (
            Preferences.objects.filter(pk=prefs.pk)
            .exclude(monthly_summary_sent_for=last_month)
            .update(monthly_summary_sent_for=last_month)
        )
        if not claimed:
            continue
        email = (
            User.objects.filter(pk=row["account_id"], is_active=True)
            .values_list("email", flat=True)
            .first()
        )
        if not email:
            continue
        send_mail(
            subject=f"[LowRouter] Your usage in {last_month:%B %Y}",
            message=(
                f"In {last_month:%B %Y} your LowRouter account made {row['requests']} requests,"
                f" {row['tokens']:,} tokens, for {format_credits(row['cost'])} credits and an"
                f" estimated {row['carbon'] or 0:.1f} gCO2e.\n\nEvery request is on the"
                " dashboard (Credits and the CSV export give the detail). You can turn this"
                " summary off in Settings > Notifications.\n"
            ),
            from_email=None,
            recipient_list=[email],
        )
        sent += 1
    return sent

"""Low-balance alerts: one email each time a balance falls below the customer's threshold.

Checked by a periodic task rather than at settlement, so the request path pays nothing for it.
``low_balance_alerted`` makes it once per crossing: set when the email goes, cleared when the
balance is back at or above the threshold (a top-up), so the next fall alerts again.
"""

import logging

from django.core.mail import send_mail
from django.db import transaction

from accounts.models import Preferences
from billing.models import Wallet
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

"""Your data (/dashboard/settings/data): download everything the account holds, delete the usage
records early, delete the account.

What deletion keeps, and why, is said on the page before anyone confirms: invoices and the
credit ledger are accounting records the law requires us to keep (``LOWROUTER_ACCOUNTING_
RETENTION_YEARS``); the daily usage aggregates hold no request and no personal data.
"""

import csv
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import FileResponse, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.audit import record_audit
from accounts.http import AuthenticatedHttpRequest
from accounts.models import BillingProfile, Preferences, User
from billing.models import Generation, Invoice, LedgerEntry, Wallet
from billing.money import micros_to_credits
from console.export import csv_lines
from keys.actions import revoke_key
from keys.models import ApiKey
from routing.policies import delete_policy

CONFIRM_WORD = "DELETE"


def _csv(rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def build_export(user: User) -> tempfile.SpooledTemporaryFile:
    """A ZIP of the account's metadata: profile, keys (no token, no digest), usage records,
    ledger, invoices list. Spooled to disk past 8 MB, so a large account never sits in memory."""
    profile = BillingProfile.objects.filter(account=user).first()
    prefs = Preferences.of(user.pk)
    # Closed by the FileResponse that sends it.
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "profile.json",
            json.dumps(
                {
                    "email": user.email,
                    "joined": user.date_joined.isoformat(),
                    "billing": {
                        "legal_name": profile.legal_name if profile else "",
                        "address": profile.address if profile else "",
                        "country": profile.country if profile else "",
                        "vat_number": profile.vat_number if profile else "",
                    },
                    "preferences": {
                        "eco_baseline_model": prefs.eco_baseline_model,
                        "low_balance_threshold": str(prefs.low_balance_threshold or ""),
                        "monthly_summary": prefs.monthly_summary,
                        "invoice_emails": prefs.invoice_emails,
                        "price_notices": prefs.price_notices,
                    },
                },
                indent=2,
                ensure_ascii=False,
            ),
        )
        keys = ApiKey.objects.filter(account=user).order_by("created_at")
        archive.writestr(
            "keys.csv",
            _csv(
                [
                    [
                        "id",
                        "name",
                        "display",
                        "models",
                        "region",
                        "daily_limit",
                        "monthly_limit",
                        "expires_at",
                        "enabled",
                        "revoked_at",
                        "created_at",
                    ]
                ]
                + [
                    [
                        k.pk,
                        k.name,
                        k.display_token,
                        " ".join(k.models),
                        k.region,
                        k.daily_credit_limit or "",
                        k.monthly_credit_limit or "",
                        k.expires_at or "",
                        k.enabled,
                        k.revoked_at or "",
                        k.created_at,
                    ]
                    for k in keys
                ]
            ),
        )
        with archive.open("usage.csv", "w") as usage:
            records = Generation.objects.filter(account=user).select_related("key")
            for line in csv_lines(records.order_by("created_at"), cap=10**9):
                usage.write(line.encode())
        ledger = LedgerEntry.objects.filter(account=user).order_by("created_at", "id")
        archive.writestr(
            "ledger.csv",
            _csv(
                [["created_at", "kind", "credits", "reference", "reason"]]
                + [
                    [
                        e.created_at,
                        e.kind,
                        micros_to_credits(e.amount_micros),
                        e.reference,
                        e.reason,
                    ]
                    for e in ledger.iterator()
                ]
            ),
        )
        invoices = Invoice.objects.filter(account=user).order_by("issued_at")
        archive.writestr(
            "invoices.csv",
            _csv(
                [["number", "issued_at", "net_cents", "vat_rate", "vat_cents", "gross_cents"]]
                + [
                    [i.number, i.issued_at, i.net_cents, i.vat_rate, i.vat_cents, i.gross_cents]
                    for i in invoices
                ]
            ),
        )
    spool.seek(0)
    return spool


@transaction.atomic
def delete_usage_records(*, account: User, actor: User | None) -> int:
    """Delete the account's usage records now, irreversibly. Their ledger entries keep their
    amounts (only their link to the deleted record is cleared) and the daily aggregates keep
    the totals, so balances, invoices and charts are unchanged. Returns how many went."""
    LedgerEntry.objects.filter(account=account, generation__isnull=False).update(generation=None)
    deleted, _ = Generation.objects.filter(account=account).delete()
    record_audit(
        actor=actor, account=account, action="usage.delete", target="", changes={"records": deleted}
    )
    return deleted


@transaction.atomic
def delete_account(*, account: User, actor: User | None) -> None:
    """Revoke every key at once, erase the personal data, keep the accounting records.

    The account row stays, anonymised and unable to sign in, because the ledger, invoices and
    aggregates point at it."""
    for key in ApiKey.objects.filter(account=account, revoked_at__isnull=True):
        revoke_key(key, actor=actor)
    delete_usage_records(account=account, actor=actor)
    delete_policy(account_id=account.pk)
    Preferences.objects.filter(account=account).delete()
    BillingProfile.objects.filter(account=account).update(
        legal_name="", address="", vat_number="", vat_number_validated_at=None
    )
    EmailAddress.objects.filter(user=account).delete()
    account.email = f"deleted-{account.pk}@deleted.invalid"
    account.full_name = ""
    account.is_active = False
    account.set_unusable_password()
    account.save()
    record_audit(actor=None, account=account, action="account.delete", target="", changes={})


@login_required
def data_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    balance = (
        Wallet.objects.filter(account=request.user).values_list("balance_micros", flat=True).first()
        or 0
    )
    context = {
        "balance": micros_to_credits(balance),
        "records": Generation.objects.filter(account=request.user).count(),
        "accounting_years": settings.LOWROUTER_ACCOUNTING_RETENTION_YEARS,
        "refund_days": settings.LOWROUTER_REFUND_WINDOW_DAYS,
        "confirm_word": CONFIRM_WORD,
    }
    return render(request, "console/data.html", context)


@login_required
@require_POST
def data_export(request: AuthenticatedHttpRequest) -> FileResponse:
    name = f"lowrouter-account-{timezone.now():%Y%m%d}.zip"
    return FileResponse(build_export(request.user), as_attachment=True, filename=name)


@login_required
@require_POST
def data_delete_usage(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.POST.get("confirm") != CONFIRM_WORD:
        messages.error(request, f"Type {CONFIRM_WORD} to confirm: nothing was deleted.")
        return redirect("console:data")
    count = delete_usage_records(account=request.user, actor=request.user)
    messages.success(request, f"{count} usage records deleted.")
    return redirect("console:data")


@login_required
@require_http_methods(["POST"])
def data_delete_account(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    # An account made through GitHub or Google may have no password: the word is enough then.
    password_ok = not user.has_usable_password() or user.check_password(
        request.POST.get("password", "")
    )
    if request.POST.get("confirm") != CONFIRM_WORD or not password_ok:
        messages.error(request, "Type DELETE and your password to confirm: nothing was deleted.")
        return redirect("console:data")
    delete_account(account=user, actor=user)
    logout(request)
    return render(request, "console/account_deleted.html")

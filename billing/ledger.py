"""The append-only credit ledger and the wallet balance it explains.

Every balance change goes through ``post_entry``: the ledger row and the balance update are
written in one transaction, so balance == sum(ledger entries) holds at every commit.
"""

from django.db import transaction
from django.db.models import F, Sum

from accounts.models import User
from billing.models import LedgerEntry, LedgerKind, Wallet


class InsufficientBalance(Exception):
    """A debit larger than the spendable balance (balance minus open holds)."""


def get_wallet(account: User | int) -> Wallet:
    account_id = account if isinstance(account, int) else account.pk
    wallet, _ = Wallet.objects.get_or_create(account_id=account_id)
    return wallet


@transaction.atomic
def post_entry(
    *,
    account: User | int,
    kind: LedgerKind,
    amount_micros: int,
    reference: str = "",
    reason: str = "",
    actor: User | None = None,
) -> LedgerEntry:
    """Append one entry and move the balance by ``amount_micros`` (negative = debit).

    A debit never takes the balance below what open holds already promised: the conditional
    UPDATE only matches when enough unreserved credit is left, so two concurrent debits cannot
    both pass a check made before either wrote.
    """
    wallet = get_wallet(account)
    updated = Wallet.objects.filter(pk=wallet.pk)
    if amount_micros < 0:
        updated = updated.filter(balance_micros__gte=F("reserved_micros") - amount_micros)
    if updated.update(balance_micros=F("balance_micros") + amount_micros) != 1:
        raise InsufficientBalance(f"Balance too low for a debit of {-amount_micros} micros.")
    return LedgerEntry.objects.create(
        account_id=wallet.account_id,
        kind=kind,
        amount_micros=amount_micros,
        reference=reference,
        reason=reason,
        actor=actor,
    )


def ledger_sum(account: User | int) -> int:
    account_id = account if isinstance(account, int) else account.pk
    total = LedgerEntry.objects.filter(account_id=account_id).aggregate(s=Sum("amount_micros"))
    return int(total["s"] or 0)

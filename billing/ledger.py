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
    release_micros: int = 0,
    generation_id: str | None = None,
    reference: str = "",
    reason: str = "",
    actor: User | None = None,
) -> LedgerEntry:
    """Append one entry and move the balance by ``amount_micros`` (negative = debit).

    ``release_micros`` also gives back that much of the wallet's reserved credit (settlement of a
    hold). A debit never takes the balance below what the other open holds promised: the
    conditional UPDATE only matches when enough unreserved credit is left, so two concurrent
    debits cannot both pass a check made before either wrote.
    """
    account_id = account if isinstance(account, int) else account.pk
    wallets = Wallet.objects.filter(account_id=account_id)
    if amount_micros < 0:
        wallets = wallets.filter(
            balance_micros__gte=F("reserved_micros") - release_micros - amount_micros
        )
    changes = {
        "balance_micros": F("balance_micros") + amount_micros,
        "reserved_micros": F("reserved_micros") - release_micros,
    }
    if wallets.update(**changes) != 1:
        if amount_micros < 0 or release_micros:
            raise InsufficientBalance(f"Balance too low for a debit of {-amount_micros} micros.")
        # First credit of this account: the wallet does not exist yet.
        get_wallet(account_id)
        Wallet.objects.filter(account_id=account_id).update(**changes)
    return LedgerEntry.objects.create(
        account_id=account_id,
        kind=kind,
        amount_micros=amount_micros,
        generation_id=generation_id,
        reference=reference,
        reason=reason,
        actor=actor,
    )


def ledger_sum(account: User | int) -> int:
    account_id = account if isinstance(account, int) else account.pk
    total = LedgerEntry.objects.filter(account_id=account_id).aggregate(s=Sum("amount_micros"))
    return int(total["s"] or 0)

"""The append-only credit ledger and the wallet balance it explains.

Every balance change goes through ``apply_entry`` (``post_entry`` wraps it in a transaction): the
ledger row and the balance update are written in one transaction, so balance == sum(ledger
entries) holds at every commit. The one exception is request settlement on PostgreSQL, which
writes the same pair inside the ``lowrouter_settle`` function (see ``billing/spending.py``).
"""

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.models import LedgerEntry, LedgerKind, Wallet
from lowrouter.sql import fetch_one, field_values, insert_row
from lowrouter.sql import table as sql_table


class InsufficientBalance(Exception):
    """A debit larger than the spendable balance (balance minus open holds)."""


def get_wallet(account: User | int) -> Wallet:
    account_id = account if isinstance(account, int) else account.pk
    wallet, _ = Wallet.objects.get_or_create(account_id=account_id)
    return wallet


def apply_entry(
    *,
    account_id: int,
    kind: LedgerKind,
    amount_micros: int,
    release_micros: int = 0,
    generation_id: str | None = None,
    reference: str = "",
    reason: str = "",
    actor: User | None = None,
) -> LedgerEntry | None:
    """Move the balance by ``amount_micros`` and append the entry explaining it, inside the
    caller's transaction. Returns None, having written nothing, when a debit does not fit.

    ``release_micros`` also gives back that much of the wallet's reserved credit (settlement of a
    hold). A debit never takes the balance below what the other open holds promised: the
    conditional UPDATE only matches when enough unreserved credit is left, so two concurrent
    debits cannot both pass a check made before either wrote. The entry carries the balance
    after it as ``balance_after``.
    """
    sql = (
        f"UPDATE {sql_table(Wallet)} SET balance_micros = balance_micros + %s, "
        "reserved_micros = reserved_micros - %s WHERE account_id = %s"
    )
    params = [amount_micros, release_micros, account_id]
    if amount_micros < 0:
        sql += " AND balance_micros - (reserved_micros - %s) >= %s"
        params += [release_micros, -amount_micros]
    row = fetch_one(sql + " RETURNING balance_micros", params)
    if row is None:
        if amount_micros < 0 or release_micros:
            return None
        # First credit of this account: the wallet does not exist yet.
        get_wallet(account_id)
        row = fetch_one(sql + " RETURNING balance_micros", params)
    entry = LedgerEntry(
        account_id=account_id,
        kind=kind,
        amount_micros=amount_micros,
        created_at=timezone.now(),
        generation_id=generation_id,
        reference=reference,
        reason=reason,
        actor=actor,
    )
    entry.pk = insert_row(LedgerEntry, field_values(entry))
    entry._state.adding, entry._state.db = False, "default"
    assert row is not None  # the wallet exists now; a credit's UPDATE always matches
    entry.balance_after = row[0]
    return entry


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
    """Append one entry and move the balance with it, atomically; raise InsufficientBalance when
    a debit does not fit the unreserved balance (see ``apply_entry``)."""
    entry = apply_entry(
        account_id=account if isinstance(account, int) else account.pk,
        kind=kind,
        amount_micros=amount_micros,
        release_micros=release_micros,
        generation_id=generation_id,
        reference=reference,
        reason=reason,
        actor=actor,
    )
    if entry is None:
        raise InsufficientBalance(f"Balance too low for a debit of {-amount_micros} micros.")
    return entry


def ledger_sum(account: User | int) -> int:
    account_id = account if isinstance(account, int) else account.pk
    return LedgerEntry.objects.for_account(account_id).total_micros()

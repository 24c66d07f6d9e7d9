"""Random money operations replayed against the ledger: balance == sum(entries) throughout."""

import random

import pytest

from accounts.models import User
from billing.ledger import InsufficientBalance, get_wallet, ledger_sum, post_entry
from billing.models import LedgerKind
from billing.refunds import adjust_balance
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
M = 1_000_000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_balance_always_equals_the_sum_of_entries(seed: int, operator: User) -> None:
    rng = random.Random(seed)
    users = UserFactory.create_batch(3)
    for _ in range(200):
        user = rng.choice(users)
        op = rng.choice(["topup", "usage", "promo", "adjust", "refund"])
        amount = rng.randint(1, 5000) * rng.choice([1, 1000, M])
        try:
            if op == "topup":
                post_entry(account=user, kind=LedgerKind.TOPUP, amount_micros=amount)
            elif op == "usage":
                post_entry(account=user, kind=LedgerKind.USAGE, amount_micros=-amount)
            elif op == "promo":
                adjust_balance(
                    account=user,
                    amount_micros=amount,
                    reason="promo",
                    actor=operator,
                    kind=LedgerKind.PROMO_GRANT,
                )
            elif op == "adjust":
                adjust_balance(
                    account=user,
                    amount_micros=rng.choice([1, -1]) * amount,
                    reason="fix",
                    actor=operator,
                )
            else:
                post_entry(account=user, kind=LedgerKind.REFUND, amount_micros=-amount)
        except InsufficientBalance:
            pass  # refused debits must leave no entry behind: checked below
        wallet = get_wallet(user)
        assert wallet.balance_micros == ledger_sum(user)
        assert wallet.balance_micros >= 0

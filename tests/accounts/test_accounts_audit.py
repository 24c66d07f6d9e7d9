import pytest
from django.db import transaction

from accounts.audit import record_audit
from accounts.models import AuditEntry, User
from tests.factories import UserFactory


@pytest.mark.django_db
def test_record_audit_stores_actor_account_and_changes(operator: User) -> None:
    customer = UserFactory()
    entry = record_audit(
        actor=operator,
        account=customer,
        action="key.update",
        target="key:abc",
        changes={"monthly_limit": [None, "10.00"]},
    )
    entry.refresh_from_db()
    assert entry.actor == operator
    assert entry.account == customer
    assert entry.changes == {"monthly_limit": [None, "10.00"]}


@pytest.mark.django_db
def test_audit_entry_rolls_back_with_the_change_it_records() -> None:
    customer = UserFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        record_audit(actor=None, account=customer.pk, action="x", target="y", changes={})
        raise RuntimeError
    assert not AuditEntry.objects.exists()

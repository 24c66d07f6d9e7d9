"""The periodic tasks the beat schedule names exist: a misspelt name would fail silently."""

from django.conf import settings

from lowrouter.celery import app


def test_every_scheduled_task_is_registered():
    app.loader.import_default_modules()
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "billing.retry_pending_refunds" in names
    assert names <= set(app.tasks), names - set(app.tasks)

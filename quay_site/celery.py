"""The Celery application: tasks take ids, call services, and keep state in the database."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quay_site.settings")

app = Celery("quay_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _log_through_django_settings(**kwargs):
    """Workers log through settings.LOGGING (LOG_FORMAT, request id, redaction), not Celery's own
    setup; a receiver here tells Celery to leave logging alone."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


# Carries the request id from the request that queues a task to the worker's lines for it.
from quay_site import request_id as _request_id  # noqa: E402, F401

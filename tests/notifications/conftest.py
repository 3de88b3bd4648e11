"""Fixtures of the notification tests: local receivers, the REST cast, and an in-process worker.

The registry's REST cast (``world``: acme/app administered by alice, bob a reader through team
devs, ...) comes from tests/registry_rest/conftest.py. ``deliver_due`` does what the Celery
worker does, in the test's process and transaction: attempt each delivery that is due.
"""

from __future__ import annotations

import ipaddress
import time

import pytest
from django.utils import timezone

from notifications import services
from notifications.models import Delivery
from quay_site.celery import app as celery_app
from tests.notifications.receivers import Receiver, SmtpReceiver
from tests.registry_rest.conftest import Api, as_principal, problem, world  # noqa: F401  (fixture)

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]


@pytest.fixture
def receiver(settings):
    """An HTTP receiver on 127.0.0.1, which the outbound guard is told to allow."""
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    server = Receiver()
    settings.NOTIFICATION_FLOWDOCK_URL = server.url("/flowdock")
    settings.NOTIFICATION_HIPCHAT_URL = server.url("/hipchat")
    yield server
    server.stop()


@pytest.fixture
def guarded_receiver():
    """An HTTP receiver on 127.0.0.1 that the guard does NOT allow (the default settings)."""
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def smtp(settings):
    server = SmtpReceiver()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.DEFAULT_FROM_EMAIL = "registry@registry.example"
    yield server
    server.stop()


@pytest.fixture
def fast_retries(settings):
    """Retries due almost at once, so a test can make several attempts in a row."""
    settings.NOTIFICATION_RETRY_BASE_SECONDS = 0.01
    settings.NOTIFICATION_RETRY_MAX_SECONDS = 0.02
    return settings


@pytest.fixture
def eager_celery():
    """Tasks run inline where they are queued (the rest of the suite never queues any)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield celery_app
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def public_host(settings):
    settings.SERVER_HOSTNAME = "registry.example:5000"
    settings.PREFERRED_URL_SCHEME = "https"
    return settings.SERVER_HOSTNAME


def deliver_due(*, wait: float = 1.0) -> list[str]:
    """Attempt every delivery due now, waiting up to ``wait`` seconds for pending ones to become
    due; returns the states the attempts ended in."""
    states = []
    deadline = time.monotonic() + wait
    while True:
        now = timezone.now()
        due = list(
            Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now)
            .order_by("id")
            .values_list("pk", flat=True)
        )
        for pk in due:
            state = services.delivery_attempt(delivery_id=pk)
            if state is not None:
                states.append(state)
        if due or time.monotonic() > deadline:
            return states
        if not Delivery.objects.filter(state=Delivery.State.PENDING).exists():
            return states
        time.sleep(0.01)

"""Celery tasks of the notifications app: they take ids and call services.

Delivery state lives in the Delivery row, not in Celery: a task that runs twice, late, or
never is harmless, because the claim in ``delivery_attempt`` decides who sends and the sweeper
queues whatever is due again.
"""

from celery import shared_task
from django.conf import settings

from notifications import services


@shared_task(name="notifications.deliver_event", ignore_result=True)
def deliver_event(event_id: int) -> list[str | None]:
    """Send a new event to every rule that wants it, then whatever else is due for a while."""
    states = services.event_deliver(event_id=event_id)
    _drain()
    return states


@shared_task(name="notifications.deliver", ignore_result=True)
def deliver(delivery_id: int) -> str | None:
    """Send one delivery (a retry, a redelivery, a test), then whatever else is due for a while."""
    state = services.delivery_attempt(delivery_id=delivery_id)
    _drain()
    return state


@shared_task(name="notifications.drain", ignore_result=True)
def drain() -> int:
    """Send whatever is due (queued by the sweeper, a reset, a recovered endpoint)."""
    return _drain()


def _drain() -> int:
    if settings.NOTIFICATION_DRAIN_SECONDS <= 0:
        return 0
    attempted, more = services.deliveries_drain(seconds=settings.NOTIFICATION_DRAIN_SECONDS)
    if more:
        # Time is up with work left: go on in a new task, so that tasks queued meanwhile (a
        # build, garbage collection) get the worker in between.
        drain.delay()
    return attempted


@shared_task(name="notifications.sweep", ignore_result=True)
def sweep() -> dict:
    return services.delivery_sweep()


@shared_task(name="notifications.prune", ignore_result=True)
def prune() -> int:
    return services.deliveries_prune()


# SMTP hiccups are retried by Celery; each run mails a fresh code (the older link stops working).
@shared_task(
    name="notifications.send_authorization_email",
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=5,
)
def send_authorization_email(record_id: int) -> bool:
    return services.authorized_email_send(record_id=record_id)

"""Celery tasks of the registry: thin wrappers that call services."""

from celery import shared_task

from registry import gc
from registry.models import GarbageCollectionRun


@shared_task(name="registry.gc_periodic", ignore_result=True)
def gc_periodic() -> int:
    """One garbage collection pass, scheduled by celery beat every GC_INTERVAL_SECONDS.

    Not retried: the pass records its own errors, and the next scheduled one carries on.
    Returns the id of the recorded run.
    """
    return gc.gc_run(trigger=GarbageCollectionRun.Trigger.PERIODIC).pk


@shared_task(name="registry.gc_requested", ignore_result=True)
def gc_requested() -> int:
    """A pass a superuser asked for from the superuser panel (recorded with the admin trigger)."""
    return gc.gc_run(trigger=GarbageCollectionRun.Trigger.ADMIN).pk

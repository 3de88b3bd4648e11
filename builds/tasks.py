"""Celery tasks of the build manager: thin, they call builds.manager and builds.packages.

The Build rows are the state: a task that runs twice, late or never is harmless, because every
assignment is made under the build's row lock and the sweeper catches up on anything missed.
"""

from celery import shared_task

from builds import manager, packages


@shared_task(name="builds.dispatch", ignore_result=True)
def build_dispatch() -> int:
    """Hand waiting builds to free workers now (queued when a build is created or a worker frees)."""
    return len(manager.dispatch_pending())


@shared_task(name="builds.sweep", ignore_result=True)
def build_sweep() -> dict:
    """Requeue builds of silent workers, then dispatch (covers any wake-up that was lost)."""
    counts = manager.builds_sweep()
    counts["dispatched"] = len(manager.dispatch_pending())
    return counts


@shared_task(name="builds.prune_packages", ignore_result=True)
def build_packages_prune() -> int:
    return packages.packages_prune()

"""Celery queues: builds and deliveries have queues of their own, so a backlog of other work
(security indexing after a burst of pushes) does not hold a build dispatch or a delivery back;
every task the project defines or schedules lands in a queue that a plain worker consumes."""

from django.conf import settings

from quay_site.celery import app


def _queue_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_builds_and_notifications_have_their_own_queues():
    assert _queue_of("builds.dispatch") == "builds"
    assert _queue_of("notifications.deliver") == "notifications"
    assert _queue_of("scanning.index_manifest") == "celery"


def test_every_task_and_scheduled_task_lands_in_a_consumed_queue():
    app.loader.import_default_modules()
    consumed = {queue.name for queue in app.conf.task_queues}
    names = [name for name in app.tasks if not name.startswith("celery.")]
    names += [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert names
    for name in names:
        assert _queue_of(name) in consumed, name


def test_each_queue_has_a_routing_key_of_its_own():
    # Queues bound with one key would each receive a copy of every message: tasks run twice.
    keys = [queue.routing_key for queue in app.conf.task_queues]
    assert len(keys) == len(set(keys))

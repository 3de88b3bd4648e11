"""Metrics read at scrape time from where the state already is: the broker and the database.

Queue lengths and builds by phase are state, not events: counting them as they change would
need every path that changes them instrumented and would drift; asking the broker and the
database when Prometheus scrapes is exact and costs a few cheap queries every 15 s or so.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

import redis
from django.conf import settings
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 2.0


@lru_cache(maxsize=4)
def redis_client(url: str) -> redis.Redis:
    """One client (with its connection pool) per URL and process, with short timeouts: a health
    check or a scrape must answer even when Redis does not."""
    return redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS)


def celery_queue_names() -> list[str]:
    from quay_site.celery import app

    names = {app.conf.task_default_queue or "celery"}
    for queue in app.conf.task_queues or ():
        names.add(queue.name)
    return sorted(names)


def celery_queue_lengths() -> dict[str, int]:
    """Messages waiting in each Celery queue (not those a worker has already taken).

    Read the way kombu stores them: on Redis one list per queue and priority step (keys carry
    REDIS_KEY_PREFIX as kombu's ``global_keyprefix``), on the filesystem transport one file per
    message named ``<time>_<uuid>.<queue>.msg``. Raises when the broker cannot be read.
    """
    url = settings.CELERY_BROKER_URL
    queues = celery_queue_names()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from kombu.transport.redis import PRIORITY_STEPS, Channel

        prefix = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("global_keyprefix", "")
        client = redis_client(url)
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{prefix}{queue}{Channel.sep}{step}" if step else f"{prefix}{queue}")
            sizes = pipe.execute()
        steps = len(PRIORITY_STEPS)
        return {queue: sum(sizes[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}
    if url.startswith("filesystem://"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        counts = dict.fromkeys(queues, 0)
        for name in os.listdir(folder):
            queue = name.partition(".")[2].removesuffix(".msg")
            if queue in counts and name.endswith(".msg"):
                counts[queue] += 1
        return counts
    return {}


def builds_by_phase() -> dict[str, int]:
    from builds.models import Build, Phase

    counts = dict.fromkeys(Phase.values, 0)
    for row in Build.objects.order_by().values("phase").annotate(n=Count("id")):
        counts[row["phase"]] = row["n"]
    return counts


class StateCollector(Collector):
    """Celery queue lengths and builds per phase, read when /metrics is asked for.

    A source that cannot be read leaves its metric out (and says so in
    ``quay_metrics_source_up``) rather than failing the whole scrape.
    """

    def collect(self):
        up = GaugeMetricFamily(
            "quay_metrics_source_up", "Whether a scrape-time source could be read.", labels=["source"]
        )
        try:
            lengths = celery_queue_lengths()
        except Exception:
            log.warning("metrics: the Celery broker could not be read", exc_info=True)
            up.add_metric(["celery_broker"], 0)
        else:
            queue = GaugeMetricFamily(
                "quay_celery_queue_length", "Celery messages waiting in each queue.", labels=["queue"]
            )
            for name, length in lengths.items():
                queue.add_metric([name], length)
            up.add_metric(["celery_broker"], 1)
            yield queue
        try:
            phases = builds_by_phase()
        except Exception:
            log.warning("metrics: builds could not be counted", exc_info=True)
            up.add_metric(["database"], 0)
        else:
            builds = GaugeMetricFamily(
                "quay_builds", "Builds in each phase (the whole installation).", labels=["phase"]
            )
            for phase, count in phases.items():
                builds.add_metric([phase], count)
            up.add_metric(["database"], 1)
            yield builds
        yield up

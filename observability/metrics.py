"""Prometheus metrics of every process of a machine, added up at scrape time.

gunicorn runs several worker processes and Celery its own, so a counter kept in one process's
memory would show whichever process answered the scrape. prometheus_client's multiprocess mode
gives each process a small memory-mapped file per metric type under ``METRICS_DIR`` (keyed by
pid); ``/metrics`` reads and adds up all of them. An increment is a write into that mapping under
one per-process lock: no system call, no I/O on the request path.

The mode has to be chosen before the first metric exists, hence the environment variable set from
settings here, above the import of the client. Every process derives it from its own settings
(``METRICS_DIR``, default ``DATA_DIR/run/prometheus``), never from an inherited environment, so a
server started by another (the tests start many) writes to its own directory.

Helpers below are what the rest of the code calls (one line at each instrumented place); label
values are always from small fixed sets (route names, methods, status codes, notification
methods), never from paths or user input.
"""

import os
from pathlib import Path

from django.conf import settings


def _use_metrics_dir() -> Path:
    path = Path(settings.METRICS_DIR)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


METRICS_DIR = _use_metrics_dir()

from prometheus_client import Counter, Histogram, values  # noqa: E402

if not values.ValueClass._multiprocess:
    # prometheus_client was imported before the directory was set (some library did): switch
    # the value class now, before any metric below is created.
    values.ValueClass = values.MultiProcessValue()

# Request latencies: from 1 ms (a manifest GET) to minutes (a big layer's upload).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Whole blob uploads and manifest pushes take longer than most requests.
UPLOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

HTTP_REQUESTS = Counter(
    "quay_http_requests",
    "HTTP requests answered, by route name, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "quay_http_request_duration_seconds",
    "Time from a request's arrival in Django to its response (a streamed body is sent after).",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
PUSHED_BYTES = Counter("quay_registry_pushed_bytes", "Blob bytes received by completed uploads.")
PULLED_BYTES = Counter(
    "quay_registry_pulled_bytes",
    "Blob bytes served by GETs (sent by this server, or handed to nginx or to an S3 redirect).",
)
BLOB_UPLOAD_DURATION = Histogram(
    "quay_registry_blob_upload_duration_seconds",
    "Duration of completed blob uploads, from the upload's start to the blob's publication.",
    buckets=UPLOAD_BUCKETS,
)
MANIFEST_PUT_DURATION = Histogram(
    "quay_registry_manifest_put_duration_seconds",
    "Duration of successful manifest PUTs (read, validate, record, tag).",
    buckets=LATENCY_BUCKETS,
)
NOTIFICATION_DELIVERIES = Counter(
    "quay_notification_deliveries",
    "Notification delivery attempts by method and result (delivered, retrying, failed).",
    ["method", "result"],
)
GC_RECLAIMED_BYTES = Counter("quay_gc_reclaimed_bytes", "Storage bytes freed by garbage collection.")
GC_BLOBS_DELETED = Counter("quay_gc_blobs_deleted", "Blobs deleted by garbage collection.")
GC_RUNS = Counter("quay_gc_runs", "Garbage collection passes by trigger and outcome.", ["trigger", "result"])

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# (route, method, status) -> (counter child, histogram child): the per-request cost is one dict
# lookup instead of prometheus_client's label validation and locked lookup, twice.
_children: dict[tuple[str, str, int], tuple] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, status)
    children = _children.get(key)
    if children is None:
        label_method = method if method in _METHODS else "other"
        children = (
            HTTP_REQUESTS.labels(route, label_method, str(status)),
            HTTP_REQUEST_DURATION.labels(route, label_method),
        )
        _children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def blob_pushed(size: int, seconds: float) -> None:
    PUSHED_BYTES.inc(size)
    BLOB_UPLOAD_DURATION.observe(max(seconds, 0.0))


def blob_pulled(size: int) -> None:
    PULLED_BYTES.inc(size)


def manifest_put(seconds: float) -> None:
    MANIFEST_PUT_DURATION.observe(seconds)


DELIVERY_RESULTS = {"delivered": "delivered", "pending": "retrying", "failed": "failed"}


def notification_delivery(method: str, state: str) -> None:
    """One finished attempt: ``state`` is the delivery's state after it (pending: a retry is due)."""
    NOTIFICATION_DELIVERIES.labels(method, DELIVERY_RESULTS.get(state, "failed")).inc()


def gc_finished(*, trigger: str, bytes_freed: int, blobs_deleted: int, failed: bool) -> None:
    GC_RECLAIMED_BYTES.inc(bytes_freed)
    GC_BLOBS_DELETED.inc(blobs_deleted)
    GC_RUNS.labels(trigger, "error" if failed else "ok").inc()

"""gunicorn settings for the web process (HTTP: /v2/, /api/v1/, UI, admin).

gunicorn sends blob files with os.sendfile (no copy through Python), which is what makes big
blob GETs fast; gthread workers keep client connections alive between small requests.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# One process per core: measured with `make bench --only 5`, 2 workers on 2 cores kept manifest
# GET p99 near 65 ms at 32 connections where 4 workers let it reach 150-250 ms (processes
# preempting each other mid-request) for the same throughput. Blob bytes go by sendfile and need
# no extra processes.
workers = int(os.environ.get("WEB_WORKERS", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
# Uploads of large layers can take long; gthread's timeout is the worker heartbeat, not a
# per-request limit, but keep it generous for slow disks.
timeout = int(os.environ.get("WEB_TIMEOUT", "300"))
keepalive = 30
# sendfile is on by default. Do not set `sendfile` here: gunicorn treats ANY value of that
# setting (even True) as --no-sendfile, which would copy every blob through Python.
accesslog = "-" if os.environ.get("ACCESS_LOG", "") == "1" else None
errorlog = "-"
# Both logs with the request id and secret redaction, as JSON lines with LOG_FORMAT=json.
logger_class = "quay_site.gunicorn_logging.GunicornLogger"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms rid=%({x-request-id}o)s'
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Let the registry see the client's address when behind the bundled nginx config.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket has one default path per user ($HOME/.gunicorn/gunicorn.ctl): every
# other server on the machine (tests start several) would unlink and take over the same socket.
control_socket_disable = True


def child_exit(server, worker):
    """A worker exited: drop its live gauges from the metrics directory (its counters stay in
    the totals). The directory is set by `manage.py serve` (observability/processes.py)."""
    from observability.processes import mark_process_dead

    mark_process_dead(worker.pid)

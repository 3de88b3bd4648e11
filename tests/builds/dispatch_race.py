"""Processes for the concurrent dispatch test (run with ``python -m``, not collected).

Separate processes, as the Celery worker and Daphne are: threads sharing the suite's in-memory
SQLite database would fail on its shared-cache table locks instead of waiting like a real one.

    python -m tests.builds.dispatch_race setup BUILDS WORKERS CAPACITY   # migrate (SQLite), data
    python -m tests.builds.dispatch_race dispatch START                  # at START, dispatch
    python -m tests.builds.dispatch_race rows                            # builds as JSON
"""

import json
import os
import sys
import time

import django


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts import services as account_services
    from builds import manager
    from builds.models import Build, BuildWorker
    from registry import services
    from registry.permissions import Principal

    command = argv[0]
    if command == "setup":
        if connection.vendor == "sqlite":
            call_command("migrate", verbosity=0)
        builds, workers, capacity = (int(v) for v in argv[1:4])
        user = account_services.user_create(username="racer", password="password-123")
        repo = services.repository_create(
            namespace=user.namespace, name="app", principal=Principal(kind="user", user=user)
        )
        for n in range(builds):
            Build.objects.create(
                repository=repo, namespace_id_cached=repo.namespace_id, source=Build.Source.DOCKERFILE, tags=[str(n)]
            )
        for n in range(workers):
            BuildWorker.objects.create(host=f"w{n}", capacity=capacity, last_heartbeat=timezone.now())
        return 0
    if command == "dispatch":
        time.sleep(max(0.0, float(argv[1]) - time.time()))
        done = manager.dispatch_pending()
        print(json.dumps([[a.build.pk, a.worker.pk] for a in done]))
        return 0
    if command == "rows":
        rows = Build.objects.order_by("pk").values_list("pk", "phase", "worker_id", "attempts")
        print(json.dumps([list(row) for row in rows]))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

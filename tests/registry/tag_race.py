"""Worker processes for the concurrent tag-move test (run with ``python -m``, not collected).

Separate processes, as gunicorn workers are: threads sharing the test suite's in-memory SQLite
database would fail on its shared-cache table locks instead of waiting like the real database.

    python -m tests.registry.tag_race setup          # migrate (SQLite only) and create the data
    python -m tests.registry.tag_race move START N   # at time START, move the tag N times
    python -m tests.registry.tag_race mixed START N  # moves, restores and deletes, ending on a move
    python -m tests.registry.tag_race rows           # the tag's rows as JSON
    python -m tests.registry.tag_race logs           # how many entries of each tag log kind
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

    from accounts import services as account_services
    from accounts.models import User
    from registry import services
    from registry.models import Manifest, Repository, Tag
    from registry.permissions import Principal

    command = argv[0]
    if command == "setup":
        if connection.vendor == "sqlite":
            call_command("migrate", verbosity=0)
        alice = account_services.user_create(username="racer", password="password-123")
        principal = Principal(kind="user", user=alice)
        repo = services.repository_create(namespace=alice.namespace, name="app", principal=principal)
        for i in (1, 2):
            Manifest.objects.create(repository=repo, digest=f"sha256:{str(i) * 64}", media_type="x", raw=b"{}", size=2)
        return 0
    if command == "move":
        start, count = float(argv[1]), int(argv[2])
        user = User.objects.get(username="racer")
        repo = Repository.objects.get(namespace__name="racer", name="app")
        manifests = list(Manifest.objects.filter(repository=repo).order_by("digest"))
        principal = Principal(kind="user", user=user)
        time.sleep(max(0.0, start - time.time()))
        for i in range(count):
            services.tag_set(
                repository=repo, name="latest", manifest=manifests[(os.getpid() + i) % 2], principal=principal, ip=None
            )
        return 0
    if command == "mixed":
        # Through the services the REST API uses: every operation may lose a race and be refused
        # (nothing to delete, nothing restorable yet); what succeeded is counted by the log.
        from registry import errors

        start, count = float(argv[1]), int(argv[2])
        user = User.objects.get(username="racer")
        repo = Repository.objects.select_related("namespace").get(namespace__name="racer", name="app")
        digests = list(Manifest.objects.filter(repository=repo).order_by("digest").values_list("digest", flat=True))
        principal = Principal(kind="user", user=user)
        time.sleep(max(0.0, start - time.time()))
        for i in range(count):
            digest = digests[(os.getpid() + i) % 2]
            step = "move" if i == count - 1 else ("move", "restore", "delete")[(os.getpid() + i) % 3]
            try:
                if step == "move":
                    services.tag_create_or_move(
                        repository=repo, name="latest", manifest_digest=digest, principal=principal, ip=None
                    )
                elif step == "restore":
                    services.tag_restore(
                        repository=repo, name="latest", manifest_digest=digest, principal=principal, ip=None
                    )
                else:
                    services.tag_delete(repository=repo, name="latest", principal=principal, ip=None)
            except (errors.ManifestUnknown, services.RequestRefused):
                pass
        return 0
    if command == "logs":
        from django.db.models import Count

        from registry.models import UsageLog

        counts = UsageLog.objects.filter(metadata__tag="latest").values("kind").annotate(n=Count("pk"))
        print(json.dumps({row["kind"]: row["n"] for row in counts}))
        return 0
    if command == "rows":
        rows = Tag.objects.filter(name="latest").order_by("lifetime_start", "id")
        print(
            json.dumps(
                [[row.lifetime_start.isoformat(), row.lifetime_end and row.lifetime_end.isoformat()] for row in rows]
            )
        )
        return 0
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

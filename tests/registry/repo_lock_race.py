"""Worker processes for the repository-lock test (run with ``python -m``, not collected).

Tag writers lock the repository row; every blob link, upload session, log entry and event
refers to it, and PostgreSQL checks each such foreign key by share-locking the referenced row.
These workers do both at once, as a busy registry does, each in its own process and connection.

    python -m tests.registry.repo_lock_race setup            # migrate and create the data
    python -m tests.registry.repo_lock_race tags START SECS   # manifest-PUT-shaped tag writes
    python -m tests.registry.repo_lock_race links START SECS  # upload sessions and blob links

A worker prints how many operations it completed, as JSON, and exits with 1 after the first
database error (with the error on stderr).
"""

import json
import os
import sys
import time
import uuid

import django


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import DatabaseError, transaction
    from django.utils import timezone

    from accounts import services as account_services
    from accounts.models import User
    from registry import services
    from registry.models import Blob, Manifest, Repository, UsageLog
    from registry.permissions import Principal
    from registry.usage import log_action

    command = argv[0]
    if command == "setup":
        call_command("migrate", verbosity=0)
        user = account_services.user_create(username="locker", password="password-123")
        repo = services.repository_create(
            namespace=user.namespace, name="busy", principal=Principal(kind="user", user=user)
        )
        for i in (1, 2):
            Manifest.objects.create(repository=repo, digest=f"sha256:{str(i) * 64}", media_type="x", raw=b"{}", size=2)
        return 0

    start, seconds = float(argv[1]), float(argv[2])
    principal = Principal(kind="user", user=User.objects.get(username="locker"))
    repo = Repository.objects.get(namespace__name="locker", name="busy")
    manifests = list(Manifest.objects.filter(repository=repo).order_by("digest"))
    time.sleep(max(0.0, start - time.time()))
    deadline, done = time.time() + seconds, 0
    try:
        while time.time() < deadline:
            if command == "tags":
                # The locking part of a manifest PUT by tag: rows referring to the repository,
                # the tag move under the repository lock, then last_modified.
                with transaction.atomic():
                    log_action(UsageLog.Kind.PUSH_REPO, principal=principal, repository=repo, ip=None, metadata={})
                    services.tag_set(
                        repository=repo,
                        name=f"t{done % 4}",
                        manifest=manifests[(os.getpid() + done) % 2],
                        principal=principal,
                        ip=None,
                    )
                    Repository.objects.filter(pk=repo.pk).update(last_modified=timezone.now())
            elif command == "links":
                # An upload's life: the session row (autocommit), then blob and link in one
                # transaction with the session's deletion, as upload_complete does.
                session = services.upload_start(repository=repo, principal=principal)
                with transaction.atomic():
                    blob = Blob.objects.create(digest=f"sha256:{uuid.uuid4().hex * 2}", size=1)
                    services._link_blob(repo, blob)
                    services.selectors.upload_rows.delete_by_pk(session.pk)
            else:
                raise SystemExit(f"unknown command {command!r}")
            done += 1
    except DatabaseError as exc:
        print(f"{type(exc).__name__} after {done} operations: {exc}", file=sys.stderr)
        print(json.dumps({"done": done}))
        return 1
    print(json.dumps({"done": done}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

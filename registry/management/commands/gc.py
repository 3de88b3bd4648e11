"""``manage.py gc``: one garbage collection pass now, with what it removed."""

from django.core.management.base import BaseCommand, CommandError

from registry import errors, gc, selectors
from registry.models import GarbageCollectionRun


def _size(n: int) -> str:
    """``1536 bytes (1.5 KiB)``: exact for scripts, readable for people."""
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} bytes ({value:.1f} {unit})"
        value /= 1024
    return f"{n} bytes ({value:.1f} TiB)"


class Command(BaseCommand):
    help = (
        "Run one garbage collection pass: end expired tags, drop tags past the time machine, then the "
        "manifests, blob links, blobs and stored bytes nothing reaches, and stale uploads."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repository", metavar="NAMESPACE/NAME", help="Collect in this repository only.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what a pass would remove now; remove nothing."
        )

    def handle(self, *args, **options):
        repository = None
        if options["repository"]:
            try:
                repository = selectors.repository_by_name(options["repository"])
            except errors.NameInvalid:
                repository = None
            if repository is None:
                raise CommandError(f"No repository {options['repository']}")
        scope = f" of {repository.full_name}" if repository else ""
        if options["dry_run"]:
            run = gc.gc_preview(repository=repository)
            self.stdout.write(f"Garbage collection{scope}, dry run (nothing removed); a pass now would take:")
        else:
            run = gc.gc_run(trigger=GarbageCollectionRun.Trigger.COMMAND, repository=repository)
            self.stdout.write(f"Garbage collection{scope} (run {run.pk}):")
        seconds = (run.finished - run.started).total_seconds()
        for label, value in (
            ("tags expired", run.tags_expired),
            ("tags dropped", run.tags_dropped),
            ("manifests deleted", run.manifests_deleted),
            ("blob links deleted", run.blob_links_deleted),
            ("blobs deleted", run.blobs_deleted),
            ("uploads cleaned", run.uploads_cleaned),
        ):
            self.stdout.write(f"  {label + ':':<20}{value}")
        self.stdout.write(f"  {'space freed:':<20}{_size(run.bytes_freed)}")
        self.stdout.write(f"  {'time:':<20}{seconds:.2f} s")
        if run.error:
            raise CommandError(f"Garbage collection stopped early: {run.error}")

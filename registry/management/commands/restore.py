"""``manage.py restore <dir>``: replace the database with a backup's and put its bytes back."""

from django.core.management.base import BaseCommand, CommandError

from registry import backup


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup`: replaces the database, copies the stored bytes back, "
        "applies newer migrations and checks storage. Stop the registry first. See README, Backup and restore."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("--force", action="store_true", help="Replace a database that has users already.")
        parser.add_argument(
            "--hardlink", action="store_true", help="Hard-link files from the backup instead of copying them."
        )
        parser.add_argument("--no-migrate", action="store_true", help="Do not apply migrations after restoring.")

    def handle(self, *args, **options):
        try:
            report = backup.backup_restore(
                directory=options["directory"],
                force=options["force"],
                hardlink=options["hardlink"],
                migrate=not options["no_migrate"],
                say=self.stdout.write,
            )
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from None
        if report.problems:
            self.stdout.write(
                f"Restored, but storage_check finds {len(report.problems)} problems: run `manage.py storage_check`"
            )
            raise SystemExit(1)
        self.stdout.write("Restored; storage_check: clean.")

"""``manage.py backup <dir>``: the database, then the stored bytes it names, into a new directory."""

from django.core.management.base import BaseCommand, CommandError

from registry import backup


class Command(BaseCommand):
    help = (
        "Back up the database and storage into DIRECTORY (new or empty): the database first, then the bytes, "
        "with garbage collection paused meanwhile. See README, Backup and restore."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument(
            "--hardlink",
            action="store_true",
            help="Hard-link stored files instead of copying them (filesystem storage on the same file system).",
        )

    def handle(self, *args, **options):
        try:
            manifest = backup.backup_create(
                directory=options["directory"], hardlink=options["hardlink"], say=self.stdout.write
            )
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Backed up the {manifest['database']} database and {manifest['files']} stored files "
            f"({manifest['bytes']} bytes) to {options['directory']}"
        )
        if manifest["vanished"]:
            self.stdout.write(f"{manifest['vanished']} files disappeared while being copied (not named by the dump)")

"""``manage.py import_osv <file.json|file.zip|directory>...``: import OSV advisories and re-match
the images already indexed (their layers are not read again)."""

import os

from django.core.management.base import BaseCommand, CommandError

from scanning import services


class Command(BaseCommand):
    help = (
        "Import vulnerability advisories in the OSV format (a .json advisory, an OSV per-ecosystem "
        ".zip such as https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip, or a "
        "directory of them) and re-match the indexed images."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="OSV .json files, .zip archives or directories")

    def handle(self, *args, paths, **options):
        rejected = 0
        for path in paths:
            if not os.path.exists(path):
                raise CommandError(f"{path}: no such file or directory")
            record = services.advisories_import(path=path, source=os.path.abspath(path))
            self.stdout.write(
                f"{path}: {record.advisories_read} read, {record.advisories_imported} imported, "
                f"{record.advisories_unchanged} unchanged, {len(record.rejected)} rejected; "
                f"{record.packages_rematched} installed packages re-matched, {record.findings_added} findings added, "
                f"{record.findings_removed} removed, {record.manifests_refreshed} manifests refreshed, "
                f"{record.events_emitted} vulnerability_found events"
            )
            for item in record.rejected:
                self.stderr.write(f"  rejected {item['source']}: {item['error']}")
            if record.state == record.State.FAILED:
                raise CommandError(f"{path}: {record.error}")
            rejected += len(record.rejected)
        if rejected:
            # The valid advisories are imported; the exit status still tells a script something was wrong.
            raise CommandError(f"{rejected} advisories rejected (listed above); the others were imported")

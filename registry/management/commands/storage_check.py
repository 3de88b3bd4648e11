"""``manage.py storage_check``: does the database agree with storage? Reports, and repairs on request.

Exit status: 0 when nothing is wrong (or everything found was repaired), 1 when problems remain.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from registry import consistency, gc


class Command(BaseCommand):
    help = (
        "Compare the database with storage: rows whose bytes are missing or differ, and bytes no row names "
        "(blobs, uploads, squashed tarballs, build packages and logs). --repair removes orphans older than the "
        "grace period and stale rows; missing bytes are reported (and with --unlink-missing made BLOB_UNKNOWN)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--verify-digests", action="store_true", help="Re-hash every stored blob (reads all the bytes)."
        )
        parser.add_argument(
            "--repair",
            action="store_true",
            help="Delete orphan bytes older than GC_GRACE_SECONDS and rows that name nothing and that nothing needs; "
            "move bytes that differ from their row to quarantine/.",
        )
        parser.add_argument(
            "--unlink-missing",
            action="store_true",
            help="With --repair: remove the repository links of blobs whose bytes are missing, so pulls answer "
            "BLOB_UNKNOWN and the next push of that content uploads it again (manifests and tags are kept).",
        )

    def handle(self, *args, **options):
        if options["unlink_missing"] and not options["repair"]:
            raise CommandError("--unlink-missing needs --repair")
        if options["repair"]:
            # Repairs delete bytes: never while a backup is copying storage (see gc.collection_lock).
            with gc.collection_lock(exclusive=False) as allowed:
                if not allowed:
                    raise CommandError("A backup is running: try --repair again once it has finished")
                report = self._check(options)
        else:
            report = self._check(options)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_json(), indent=2))
        else:
            self._print(report)
        if report.problems:
            raise SystemExit(1)

    def _check(self, options) -> consistency.Report:
        return consistency.storage_check(
            repair=options["repair"],
            unlink_missing=options["unlink_missing"],
            verify_digests=options["verify_digests"],
        )

    def _print(self, report: consistency.Report) -> None:
        checked = report.checked
        verified = f", {checked['digests_verified']} digests verified" if checked["digests_verified"] else ""
        self.stdout.write(
            f"Checked {checked['blob_rows']} blob rows against {checked['stored_objects']} stored objects "
            f"({checked['stored_blobs']} blobs, {checked['stored_blob_bytes']} bytes{verified})."
        )
        for kind, label in consistency.KINDS.items():
            findings = report.of(kind)
            if not findings:
                continue
            open_count = sum(1 for f in findings if f.open)
            self.stdout.write(f"{label}: {len(findings)}" + (f" ({open_count} open)" if open_count else ""))
            for finding in findings:
                state = "PROBLEM" if finding.open else ("fixed" if finding.resolved else "note")
                detail = ", ".join(f"{k}={v}" for k, v in finding.detail.items())
                line = f"  [{state}] {finding.name}" + (f" ({detail})" if detail else "")
                if finding.repair:
                    line += f": {finding.repair}"
                self.stdout.write(line)
        if report.affected:
            self.stdout.write("Affected by missing or damaged blobs:")
            for entry in report.affected:
                tags = ", ".join(entry["tags"]) or "no alive tag"
                self.stdout.write(f"  {entry['repository']}@{entry['manifest']} ({tags})")
        if checked.get("quarantined"):
            self.stdout.write(f"{checked['quarantined']} files in quarantine/ (moved aside by earlier repairs).")
        if report.problems:
            hint = "" if report.repaired else " (--repair fixes what can be fixed)"
            self.stdout.write(f"{len(report.problems)} problems remain{hint}.")
        else:
            self.stdout.write("Clean.")

"""Celery tasks of the scanner: they take ids and call services (state lives in the rows)."""

from celery import shared_task

from scanning import services


@shared_task(name="scanning.index_manifest", ignore_result=True)
def index_manifest(manifest_id: int) -> str | None:
    """Index a pushed manifest's layers, compose its packages, match them, announce findings."""
    scan = services.manifest_index(manifest_id=manifest_id)
    return scan.status if scan is not None else None


@shared_task(name="scanning.import_upload", ignore_result=True)
def import_upload(import_id: int) -> str | None:
    """Import an OSV file uploaded in Django admin."""
    record = services.advisory_upload_import(import_id=import_id)
    return record.state if record is not None else None


@shared_task(name="scanning.sweep", ignore_result=True)
def sweep() -> int:
    """Queue again the scans a lost task left queued."""
    return services.scans_sweep()

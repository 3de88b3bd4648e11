"""An OSV file uploaded in Django admin on one machine is imported by a worker on another.

With S3 storage the upload waits in the bucket, not under the web machine's DATA_DIR: here the
upload and the import run with different DATA_DIRs (two machines), against moto's S3 server.
"""

import io
import json
import zipfile

from django.test import Client

from accounts import services as account_services
from quay_site.celery import app
from scanning.models import Advisory, AdvisoryImport
from tests.conftest import PASSWORD
from tests.scanning.test_matching import fixture_advisories
from tests.storage.conftest import moto_endpoint, s3  # noqa: F401  (S3 through moto's server)


def _files(directory) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_an_admin_upload_is_imported_by_a_worker_on_another_machine(
    db,
    s3,  # noqa: F811
    settings,
    tmp_path,
    django_capture_on_commit_callbacks,
):
    web_dir, worker_dir = tmp_path / "web", tmp_path / "worker"
    web_dir.mkdir()
    worker_dir.mkdir()
    root = account_services.user_create(username="root", password=PASSWORD, is_superuser=True)
    root.is_staff = True
    root.save()
    client = Client()
    client.force_login(root)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for doc in fixture_advisories()[:3]:
            z.writestr(f"{doc['id']}.json", json.dumps(doc))
    archive.seek(0)
    archive.name = "Debian.zip"

    settings.DATA_DIR = web_dir
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/admin/scanning/advisoryimport/upload/", {"file": archive})
    assert response.status_code == 302
    record = AdvisoryImport.objects.get()
    assert record.state == "queued"
    (key,) = s3.keys("osv-uploads/")
    assert record.upload_path == f"s3:{key}"
    assert _files(web_dir) == []  # nothing kept on the web machine

    settings.DATA_DIR = worker_dir
    app.conf.task_always_eager = True
    try:
        for callback in callbacks:
            callback()
    finally:
        app.conf.task_always_eager = False
    record.refresh_from_db()
    assert (record.state, record.advisories_imported, record.error) == ("done", 3, "")
    assert Advisory.objects.count() == 3
    assert s3.keys("osv-uploads/") == []
    assert _files(worker_dir) == []

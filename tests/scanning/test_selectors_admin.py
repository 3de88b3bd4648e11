"""The Tags tab's counts for a page of tags in one query; the superuser OSV upload in admin."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as account_services
from quay_site.celery import app
from registry.models import Tag
from scanning import selectors
from scanning.models import Advisory, AdvisoryImport
from tests.conftest import PASSWORD
from tests.scanning.conftest import image, import_docs, layer
from tests.scanning.images import alpine_layers
from tests.scanning.test_matching import fixture_advisories


def test_counts_for_a_page_of_tags_take_one_query(push, tmp_path):
    import_docs(tmp_path, *fixture_advisories())
    push(image(alpine_layers()), "a")
    for n in range(5):
        extra = layer(
            {f"usr/lib/python3/dist-packages/pkg{n}-1.0.dist-info/METADATA": f"Name: pkg{n}\nVersion: 1.0\n\n".encode()}
        )
        push(image([*alpine_layers(), extra], seed=str(n)), f"t{n}")
    push(image(alpine_layers(), seed="queued"), "queued", scan=False)
    tags = list(Tag.objects.filter(hidden=False, lifetime_end__isnull=True))
    assert len(tags) == 7
    with CaptureQueriesContext(connection) as queries:
        by_tag = selectors.tag_summaries(tags=tags)
    assert len(queries) == 1
    by_name = {tag.name: by_tag[tag.pk] for tag in tags}
    assert (by_name["a"].vulnerabilities, by_name["a"].fixable, by_name["a"].packages) == (2, 2, 3)
    assert (by_name["t3"].packages, by_name["t3"].vulnerabilities) == (4, 2)
    assert by_name["queued"].status == "queued" and by_name["queued"].vulnerabilities == 0


def test_a_superuser_uploads_osv_data_in_admin_and_the_import_runs(db, tmp_path, django_capture_on_commit_callbacks):
    import io
    import json
    import zipfile

    root = account_services.user_create(username="root", password=PASSWORD)
    root.is_superuser = root.is_staff = True
    root.save()
    staff = account_services.user_create(username="staff", password=PASSWORD)
    staff.is_staff = True
    staff.save()

    from django.test import Client

    blocked = Client()
    blocked.force_login(staff)
    assert blocked.get("/admin/scanning/advisoryimport/upload/").status_code in (302, 403)

    client = Client()
    client.force_login(root)
    page = client.get("/admin/scanning/advisoryimport/")
    assert b"Upload OSV data" in page.content
    wrong = client.post("/admin/scanning/advisoryimport/upload/", {"file": io.BytesIO(b"x")})
    assert wrong.status_code == 200 and b"This field is required" in wrong.content or b"Upload a .json" in wrong.content

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for doc in fixture_advisories()[:3]:
            z.writestr(f"{doc['id']}.json", json.dumps(doc))
    archive.seek(0)
    archive.name = "Debian.zip"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/admin/scanning/advisoryimport/upload/", {"file": archive})
    assert response.status_code == 302
    record = AdvisoryImport.objects.get()
    assert record.state == "queued" and record.source == "upload: Debian.zip"
    app.conf.task_always_eager = True
    try:
        for callback in callbacks:
            callback()
    finally:
        app.conf.task_always_eager = False
    record.refresh_from_db()
    assert (record.state, record.advisories_imported) == ("done", 3)
    assert Advisory.objects.count() == 3
    import os

    assert not os.path.exists(record.upload_path)

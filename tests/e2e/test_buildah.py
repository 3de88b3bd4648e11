"""buildah builds a Dockerfile with a RUN step FROM an image in the registry and pushes it back;
the pushed layer is read over HTTP to prove the RUN step's file arrived."""

import gzip
import io
import json
import tarfile

import pytest

from tests.e2e import images
from tests.e2e.conftest import PASSWORD

pytestmark = pytest.mark.e2e

ALICE = f"alice:{PASSWORD}"


def layer_files(blob: bytes) -> dict[str, bytes]:
    """Regular files of a (gzip) layer tar, by path without a leading ``./`` or ``/``."""
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for member in tar:
            if member.isfile():
                files[member.name.lstrip("./").lstrip("/")] = tar.extractfile(member).read()
    return files


@pytest.mark.parametrize("format_", ["oci", "docker"])
def test_it_builds_from_the_registry_and_pushes_the_run_layer(registry, clients, busybox, tmp_path, format_):
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox.ref}\nRUN echo hello > /hello.txt\n")
    repo = f"alice/built-{format_}"
    ref = f"{registry.host}/{repo}:latest"

    clients.buildah(
        "bud",
        "--isolation",
        "chroot",
        "--format",
        format_,
        "--tls-verify=false",
        "--creds",
        ALICE,
        "--tag",
        ref,
        str(context),
    )
    digest_file = tmp_path / "digest"
    clients.buildah("push", "--tls-verify=false", "--creds", ALICE, "--digestfile", str(digest_file), ref)

    token = registry.token(f"repository:{repo}:pull", username="alice", password=PASSWORD)
    auth = {"Authorization": f"Bearer {token}"}
    response = registry.request(
        "GET",
        f"/v2/{repo}/manifests/latest",
        headers={**auth, "Accept": f"{images.OCI_MANIFEST}, {images.DOCKER_MANIFEST}"},
    )
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest_file.read_text().strip()
    expected_type = images.DOCKER_MANIFEST if format_ == "docker" else images.OCI_MANIFEST
    assert response.headers["Content-Type"] == expected_type
    manifest = json.loads(response.content)
    # The base image's layer, then the one the RUN step made.
    assert len(manifest["layers"]) == 2
    base = json.loads((busybox.layout / "blobs" / "sha256" / busybox.digest.split(":")[1]).read_bytes())
    top = manifest["layers"][-1]
    blob = registry.request("GET", f"/v2/{repo}/blobs/{top['digest']}", headers=auth)
    assert blob.status_code == 200
    assert images.sha256(blob.content) == top["digest"]
    files = layer_files(blob.content)
    assert files["hello.txt"] == b"hello\n"
    assert "bin/busybox" not in files
    # The base layer travelled unchanged (same compressed bytes, so the same digest).
    assert manifest["layers"][0]["digest"] == base["layers"][0]["digest"]

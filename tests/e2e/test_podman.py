"""podman (vfs storage under the test's temp directory) pulls, runs and pushes images."""

import json

import pytest

from tests.e2e import images
from tests.e2e.conftest import PASSWORD

pytestmark = pytest.mark.e2e

ALICE = f"alice:{PASSWORD}"
# What `podman run` needs on these machines; no network, so the host's is never touched.
RUN_FLAGS = (
    "--rm",
    "--network",
    "none",
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
)


def image_inspect(clients, ref: str) -> dict:
    return json.loads(clients.podman("image", "inspect", ref).stdout)[0]


def manifest_head(registry, repo: str, reference: str):
    return registry.request(
        "HEAD",
        f"/v2/{repo}/manifests/{reference}",
        f"repository:{repo}:pull",
        username="alice",
        password=PASSWORD,
        headers={"Accept": f"{images.OCI_MANIFEST}, {images.DOCKER_MANIFEST}"},
    )


def test_it_pulls_and_runs_an_image(registry, clients, busybox):
    clients.podman("pull", "--tls-verify=false", "--creds", ALICE, busybox.ref)

    info = image_inspect(clients, busybox.ref)
    assert info["Digest"] == busybox.digest
    assert f"{busybox.ref.rsplit(':', 1)[0]}@{busybox.digest}" in info["RepoDigests"]
    # The layers came through intact: busybox runs and its applet links resolve.
    run = clients.podman("run", *RUN_FLAGS, busybox.ref, "sh", "-c", "echo hello from podman; ls /bin")
    assert run.stdout.split() == ["hello", "from", "podman", "busybox", "cat", "echo", "ls", "sh"]


@pytest.mark.parametrize("format_", ["oci", "v2s2"])
def test_it_pushes_and_pulls_back(registry, clients, busybox, tmp_path, format_):
    clients.podman("pull", "--tls-verify=false", "--creds", ALICE, busybox.ref)
    repo = f"alice/podman-{format_}"
    ref = f"{registry.host}/{repo}:v1"
    clients.podman("tag", busybox.ref, ref)
    digest_file = tmp_path / "digest"

    clients.podman(
        "push", "--tls-verify=false", "--creds", ALICE, "--format", format_, "--digestfile", str(digest_file), ref
    )

    digest = digest_file.read_text().strip()
    head = manifest_head(registry, repo, "v1")
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest
    expected_type = images.DOCKER_MANIFEST if format_ == "v2s2" else images.OCI_MANIFEST
    assert head.headers["Content-Type"] == expected_type

    # Forget every image, so the pull below has to fetch all of it from the registry.
    clients.podman("rmi", "--all", "--force")
    assert clients.podman("images", "--quiet").stdout.strip() == ""
    clients.podman("pull", "--tls-verify=false", "--creds", ALICE, ref)

    info = image_inspect(clients, ref)
    assert info["Digest"] == digest
    assert f"{registry.host}/{repo}@{digest}" in info["RepoDigests"]
    assert info["ManifestType"] == expected_type
    run = clients.podman("run", *RUN_FLAGS, ref, "echo", "pulled back")
    assert run.stdout == "pulled back\n"


def test_it_refuses_a_push_without_permission(registry, clients, busybox):
    clients.podman("pull", "--tls-verify=false", "--creds", ALICE, busybox.ref)
    ref = f"{registry.host}/alice/private-images:from-bob"
    clients.podman("tag", busybox.ref, ref)

    failed = clients.podman("push", "--tls-verify=false", "--creds", f"bob:{PASSWORD}", ref, check=False)

    assert failed.returncode != 0
    assert "unauthorized" in failed.stderr.lower() or "authentication required" in failed.stderr.lower()
    assert manifest_head(registry, "alice/private-images", "from-bob").status_code == 404

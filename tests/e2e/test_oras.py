"""oras (oras-py) pushes and pulls artifacts: one with a subject, listed by the referrers API,
and artifacts in an application repository, which refuses images."""

import json

import oras.client
import oras.container
import oras.oci
import pytest

from tests.e2e import images
from tests.e2e.conftest import PASSWORD

pytestmark = pytest.mark.e2e

ALICE = f"alice:{PASSWORD}"
SBOM_TYPE = "application/vnd.e2e.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.e2e.signature.v1"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def oras_client(registry, push_repo: str | None = None) -> oras.client.OrasClient:
    """An oras-py client for plain HTTP with alice's credentials.

    oras-py keeps the first token it is given and, on a 401, retries with that same token: a
    push that starts with a HEAD (pull-scoped token) then fails on its POST. Like oras-go's
    scope hints, ask for ``pull,push`` before a push and hand oras-py that token.
    """
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    client.auth.set_basic_auth("alice", PASSWORD)
    if push_repo:
        client.auth.set_token_auth(
            registry.token(f"repository:{push_repo}:pull,push", username="alice", password=PASSWORD)
        )
    return client


def push_image(registry, clients, tmp_path, ref: str, *, check: bool = True):
    image = images.hand_image(layer_count=1)
    source = images.write_oci_layout(tmp_path / "image", image)
    result = clients.skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", ALICE, f"oci:{source}:latest", f"docker://{ref}", check=check
    )
    return image, result


def referrers(registry, repo: str, digest: str, artifact_type: str | None = None):
    response = registry.request(
        "GET",
        f"/v2/{repo}/referrers/{digest}",
        f"repository:{repo}:pull",
        username="alice",
        password=PASSWORD,
        params={"artifactType": artifact_type} if artifact_type else None,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == images.OCI_INDEX
    return response


def test_it_pushes_and_pulls_an_artifact_with_a_subject_listed_as_referrer(registry, clients, tmp_path, monkeypatch):
    repo = "alice/oras-demo"
    subject, _ = push_image(registry, clients, tmp_path, f"{registry.host}/{repo}:image")
    sbom = tmp_path / "sbom.json"
    sbom.write_bytes(json.dumps({"packages": ["busybox"], "nonce": tmp_path.name}).encode())

    pushed = oras_client(registry, push_repo=repo).push(
        target=f"{registry.host}/{repo}:sbom",
        files=[f"{sbom}:application/vnd.e2e.sbom.layer.v1+json"],
        # No such file: oras-py then uploads the empty config `{}` under this (artifact) type.
        manifest_config=f"{tmp_path / 'no-config'}:{SBOM_TYPE}",
        manifest_annotations={"org.example.note": "e2e"},
        subject=oras.oci.Subject(mediaType=images.OCI_MANIFEST, digest=subject.digest, size=len(subject.manifest)),
        disable_path_validation=True,
        quiet=True,
    )

    assert pushed.status_code == 201
    assert pushed.headers["OCI-Subject"] == subject.digest
    sbom_digest = pushed.headers["Docker-Content-Digest"]

    # Pulled back (oras-py's own basic-auth -> token flow, pull only): same bytes.
    out = tmp_path / "pulled"
    monkeypatch.chdir(tmp_path)
    files = oras_client(registry).pull(target=f"{registry.host}/{repo}:sbom", outdir=str(out))
    assert [f.rsplit("/", 1)[-1] for f in files] == ["sbom.json"]
    assert (out / "sbom.json").read_bytes() == sbom.read_bytes()
    manifest = oras_client(registry).get_manifest(f"{registry.host}/{repo}@{sbom_digest}")
    assert manifest["subject"]["digest"] == subject.digest
    assert manifest["config"]["mediaType"] == SBOM_TYPE

    # A second referrer, untagged, with an explicit artifactType and the OCI empty config,
    # through oras-py's lower-level calls (its push() has no artifactType).
    signer = oras_client(registry, push_repo=repo)
    container = oras.container.Container(f"{registry.host}/{repo}:unused")
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"{}")
    signature = tmp_path / "signature.bin"
    signature.write_bytes(b"signed:" + subject.digest.encode())
    config = {"mediaType": images.OCI_EMPTY, "digest": images.sha256(b"{}"), "size": 2}
    layer = oras.oci.NewLayer(str(signature), media_type="application/vnd.e2e.signature.layer.v1")
    for path, descriptor in ((empty, config), (signature, layer)):
        assert signer.upload_blob(str(path), container, descriptor).status_code in (200, 201)
    signature_manifest = {
        "schemaVersion": 2,
        "mediaType": images.OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": config,
        "layers": [layer],
        "subject": {"mediaType": images.OCI_MANIFEST, "digest": subject.digest, "size": len(subject.manifest)},
    }
    signature_digest = images.sha256(json.dumps(signature_manifest).encode())
    untagged = oras.container.Container(f"{registry.host}/{repo}@{signature_digest}")
    put = signer.upload_manifest(signature_manifest, untagged)
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == signature_digest
    assert put.headers["OCI-Subject"] == subject.digest

    listed = referrers(registry, repo, subject.digest)
    assert "OCI-Filters-Applied" not in listed.headers
    by_digest = {d["digest"]: d for d in listed.json()["manifests"]}
    assert set(by_digest) == {sbom_digest, signature_digest}
    assert by_digest[sbom_digest]["artifactType"] == SBOM_TYPE
    assert by_digest[sbom_digest]["mediaType"] == images.OCI_MANIFEST
    assert by_digest[sbom_digest]["annotations"] == {"org.example.note": "e2e"}
    assert by_digest[signature_digest]["artifactType"] == SIGNATURE_TYPE
    assert by_digest[signature_digest]["size"] == len(json.dumps(signature_manifest).encode())

    filtered = referrers(registry, repo, subject.digest, artifact_type=SBOM_TYPE)
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [sbom_digest]
    signatures = referrers(registry, repo, subject.digest, artifact_type=SIGNATURE_TYPE)
    assert [d["digest"] for d in signatures.json()["manifests"]] == [signature_digest]
    nothing = referrers(registry, repo, subject.digest, artifact_type="application/vnd.e2e.none")
    assert nothing.headers["OCI-Filters-Applied"] == "artifactType"
    assert nothing.json()["manifests"] == []
    # Nothing refers to the artifact itself, nor to a digest never pushed.
    assert referrers(registry, repo, sbom_digest).json()["manifests"] == []
    assert referrers(registry, repo, images.sha256(b"never pushed")).json()["manifests"] == []


def test_it_pushes_artifacts_but_no_images_to_an_application_repository(registry, clients, tmp_path, monkeypatch):
    repo = "alice/charts"
    chart = tmp_path / "mychart-1.0.0.tgz"
    chart.write_bytes(images.tar_gz({"mychart/Chart.yaml": b"apiVersion: v2\nname: mychart\nversion: 1.0.0\n"})[0])
    config = tmp_path / "chart-config.json"
    config.write_text(json.dumps({"name": "mychart", "version": "1.0.0", "apiVersion": "v2"}))

    pushed = oras_client(registry, push_repo=repo).push(
        target=f"{registry.host}/{repo}:1.0.0",
        files=[f"{chart}:{HELM_CHART}"],
        manifest_config=f"{config}:{HELM_CONFIG}",
        disable_path_validation=True,
        quiet=True,
    )

    assert pushed.status_code == 201
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "pulled"
    oras_client(registry).pull(target=f"{registry.host}/{repo}:1.0.0", outdir=str(out))
    assert (out / chart.name).read_bytes() == chart.read_bytes()

    _, refused = push_image(registry, clients, tmp_path, f"{registry.host}/{repo}:an-image", check=False)

    assert refused.returncode != 0
    assert "unsupported" in refused.stderr.lower(), refused.stderr
    tags = registry.request(
        "GET", f"/v2/{repo}/tags/list", f"repository:{repo}:pull", username="alice", password=PASSWORD
    ).json()["tags"]
    assert tags == ["1.0.0"]

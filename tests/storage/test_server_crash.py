"""A live registry (gunicorn, SQLite, filesystem storage) losing clients and being SIGKILLed in
the middle of a PATCH: only committed bytes count, and the upload can be finished afterwards."""

import http.client
import socket

import requests

from tests.storage.conftest import wait_for
from tests.storage.helpers import digest_of

MIB = 1024 * 1024


def auth(registry, repo: str) -> dict:
    return {"Authorization": f"Bearer {registry.token(f'repository:{repo}:pull,push')}"}


def start_upload(registry, repo: str, headers: dict) -> str:
    response = requests.post(f"{registry.url}/v2/{repo}/blobs/uploads/", headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def patch(registry, location: str, headers: dict, data: bytes, offset: int) -> requests.Response:
    return requests.patch(
        f"{registry.url}{location}",
        data=data,
        headers={
            **headers,
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(data) - 1}",
        },
        timeout=30,
    )


def upload_status(registry, location: str, headers: dict) -> str:
    response = requests.get(f"{registry.url}{location}", headers=headers, timeout=10)
    assert response.status_code == 204, response.text
    return response.headers["Range"]


def send_partial_patch(registry, location: str, headers: dict, offset: int, declared: int, body: bytes):
    """Open a raw connection and send a PATCH whose body stops after ``body``; return the socket."""
    sock = socket.create_connection(("127.0.0.1", registry.port), timeout=30)
    head = [
        f"PATCH {location} HTTP/1.1",
        f"Host: {registry.host}",
        f"Authorization: {headers['Authorization']}",
        "Content-Type: application/octet-stream",
        f"Content-Length: {declared}",
        f"Content-Range: {offset}-{offset + declared - 1}",
        "",
        "",
    ]
    sock.sendall("\r\n".join(head).encode() + body)
    return sock


def blob_head(registry, repo: str, headers: dict, digest: str) -> int:
    return requests.head(f"{registry.url}/v2/{repo}/blobs/{digest}", headers=headers, timeout=10).status_code


def blob_files(registry) -> set[str]:
    return {p.name for p in registry.blobs_dir.rglob("*") if p.is_file()}


def test_a_client_going_away_mid_body_commits_nothing(live_registry):
    repo = "alice/dropped"
    headers = auth(live_registry, repo)
    data = bytes(range(256)) * 4096 * 2  # 2 MiB
    location = start_upload(live_registry, repo, headers)
    assert patch(live_registry, location, headers, data[:MIB], 0).status_code == 202

    sock = send_partial_patch(live_registry, location, headers, MIB, MIB, data[MIB : MIB + 300_000])
    sock.shutdown(socket.SHUT_WR)
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    sock.close()

    assert response.status == 400, body
    assert b"SIZE_INVALID" in body
    assert upload_status(live_registry, location, headers) == f"0-{MIB - 1}"
    assert patch(live_registry, location, headers, data[MIB:], MIB).status_code == 202
    response = requests.put(f"{live_registry.url}{location}?digest={digest_of(data)}", headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    pulled = requests.get(f"{live_registry.url}/v2/{repo}/blobs/{digest_of(data)}", headers=headers, timeout=30)
    assert pulled.content == data


def test_a_server_killed_mid_patch_keeps_only_committed_bytes(live_registry):
    repo = "alice/killed"
    headers = auth(live_registry, repo)
    data = bytes((i * 7) % 251 for i in range(4 * MIB))
    committed = 256 * 1024
    before = blob_files(live_registry)
    location = start_upload(live_registry, repo, headers)
    upload_id = location.rsplit("/", 1)[1]
    response = patch(live_registry, location, headers, data[:committed], 0)
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{committed - 1}"

    # Declare 3 MiB, send 1.5 MiB: the server writes its first 1 MiB read past the committed
    # offset, then waits for more. Kill it once those torn bytes are on disk.
    torn_end = committed + MIB
    sock = send_partial_patch(
        live_registry, location, headers, committed, 3 * MIB, data[committed : committed + 3 * MIB // 2]
    )
    upload_file = live_registry.uploads_dir / upload_id
    wait_for(
        lambda: upload_file.exists() and upload_file.stat().st_size >= torn_end,
        timeout=30,
        what="the server to write the partial body",
        process=live_registry.process,
        log=live_registry.log,
    )
    live_registry.kill()
    sock.close()

    live_registry.start()
    headers = auth(live_registry, repo)

    assert upload_status(live_registry, location, headers) == f"0-{committed - 1}"
    # Neither the torn prefix nor the whole blob is visible as a blob.
    assert blob_head(live_registry, repo, headers, digest_of(data[:torn_end])) == 404
    assert blob_head(live_registry, repo, headers, digest_of(data)) == 404
    assert blob_files(live_registry) == before

    # A client that believes the torn bytes arrived is sent back to the committed offset.
    response = patch(live_registry, location, headers, data[torn_end:], torn_end)
    assert response.status_code == 416
    assert response.headers["Range"] == f"0-{committed - 1}"

    assert patch(live_registry, location, headers, data[committed:], committed).status_code == 202
    response = requests.put(f"{live_registry.url}{location}?digest={digest_of(data)}", headers=headers, timeout=30)
    assert response.status_code == 201, response.text

    pulled = requests.get(f"{live_registry.url}/v2/{repo}/blobs/{digest_of(data)}", headers=headers, timeout=30)
    assert pulled.status_code == 200
    assert pulled.headers["Docker-Content-Digest"] == digest_of(data)
    assert digest_of(pulled.content) == digest_of(data)
    assert blob_head(live_registry, repo, headers, digest_of(data[:torn_end])) == 404
    assert blob_files(live_registry) - before == {digest_of(data).split(":")[1]}
    assert not any(p.name.startswith(upload_id) for p in live_registry.uploads_dir.iterdir())

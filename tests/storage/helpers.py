"""Small helpers shared by the storage tests."""

import hashlib
import io
import json


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class EndsEarly(io.RawIOBase):
    """A request body whose client went away: EOF (or ``error``) after ``data``."""

    def __init__(self, data: bytes, error: Exception | None = None):
        self._data = io.BytesIO(data)
        self._error = error

    def readable(self):
        return True

    def read(self, n=-1):
        chunk = self._data.read(n)
        if not chunk and self._error is not None:
            raise self._error
        return chunk


def image_manifest(config: bytes, layers: list[bytes]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        }
    ).encode()

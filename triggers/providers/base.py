"""What every git provider (GitHub, GitLab, Bitbucket) does for a build trigger, and the HTTP
plumbing they share.

A ``Provider`` speaks one provider's documented REST API with the connected user's OAuth token:
the OAuth web flow (authorize URL, code exchange, refresh), the pickers of the setup (namespaces,
repositories, branches and tags), what activation needs (repository facts, a deploy key, a push
webhook) and their removal, and commit facts for Run Now. It also reads the provider's webhook
deliveries: signature check, delivery id, event kind, and the push payload mapped to the trigger
metadata (``commit, ref, default_branch, git_url, commit_info``).

Every request goes through ``quay_site.outbound`` (the guarded client): the provider's address
is an operator setting, and self-hosted ones sit on private networks only when the operator opens
them with ``OUTBOUND_ALLOWED_NETWORKS``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from quay_site import outbound
from triggers.models import ProviderApp

log = logging.getLogger(__name__)

# Listings (repositories of an organization, branches) can be large JSON documents.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
PAGE_SIZE = 100
ZERO_SHA = "0" * 40


class ProviderError(Exception):
    """A provider request failed; the message is for the user. ``status`` is the provider's HTTP
    status (None when it could not be reached)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class ProviderAuthError(ProviderError):
    """The provider refused the token (revoked, expired and not refreshable): connect again."""


@dataclass(frozen=True)
class Token:
    access_token: str
    refresh_token: str = ""
    expires_in: int | None = None


@dataclass(frozen=True)
class SourceRepository:
    """What activation learns about the picked repository and keeps in ``BuildTrigger.remote``."""

    full_name: str
    git_url: str
    html_url: str
    default_branch: str
    project_id: str = ""


def epoch(value: str | None) -> int:
    """Seconds since the epoch of an ISO 8601 timestamp; 0 when missing or unreadable."""
    if not value:
        return 0
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def person(username: str | None, url: str | None = "", avatar_url: str | None = "") -> dict | None:
    """A ``commit_info`` author or committer; None without a name to show."""
    if not username:
        return None
    return {"username": username, "url": url or "", "avatar_url": avatar_url or ""}


def commit_info(*, url, message, date, author: dict | None, committer: dict | None) -> dict:
    info = {"url": url or "", "message": message or "", "date": date or ""}
    if author:
        info["author"] = author
    if committer:
        info["committer"] = committer
    return info


def ref_names(rows) -> list[str]:
    """The ``name`` of each branch or tag row a provider's listing returned."""
    return [row["name"] for row in rows or [] if isinstance(row, dict) and isinstance(row.get("name"), str)]


def is_dockerfile_name(name: str) -> bool:
    """Quay's rule for the files it offers as Dockerfiles: ``Dockerfile`` or ``*.Dockerfile``."""
    return name == "Dockerfile" or name.endswith(".Dockerfile")


def decoded_file(data, title: str) -> str | None:
    """A file from a contents API answer (GitHub, GitLab: ``{"encoding": "base64", "content"}``);
    None when the answer is not a file (a directory listing)."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), str):
        return None
    if data.get("type") not in (None, "file"):
        return None
    if data.get("encoding") != "base64":
        # GitHub leaves files over 1 MB out of the contents answer (encoding "none").
        raise ProviderError(f"{title} did not send the file's contents (it may be too large)")
    try:
        return base64.b64decode(data["content"]).decode("utf-8", errors="replace")
    except (ValueError, binascii.Error):
        raise ProviderError(f"{title} sent contents that are not base64") from None


def hmac_sha256_matches(secret: str, body: bytes, presented: str | None) -> bool:
    """``presented`` is ``sha256=<hex HMAC-SHA256 of body keyed by secret>``; constant time."""
    if not presented or not secret or not presented.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), presented.strip().encode())


class Provider:
    """One provider's API for triggers; subclasses fill in the endpoints. See the module doc."""

    service: str = ""
    title: str = ""
    default_web_url: str = ""
    # Header names as Django's request.META spells them.
    delivery_header: str = ""
    event_header: str = ""

    def __init__(self, app: ProviderApp, client_secret: str):
        self.app = app
        self.client_id = app.client_id
        self.client_secret = client_secret

    # -- addresses --------------------------------------------------------------------------

    @property
    def web_url(self) -> str:
        return (self.app.web_url or self.default_web_url).rstrip("/")

    @property
    def api_url(self) -> str:
        return (self.app.api_url or self.derived_api_url()).rstrip("/")

    def derived_api_url(self) -> str:
        raise NotImplementedError

    @property
    def web_host(self) -> str:
        return urlsplit(self.web_url).hostname or ""

    # -- HTTP -------------------------------------------------------------------------------

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def error_message(self, data) -> str | None:
        if isinstance(data, dict):
            for key in ("message", "error_description", "error"):
                value = data.get(key)
                if isinstance(value, str) and value:
                    return value
                if isinstance(value, dict) and isinstance(value.get("message"), str):
                    return value["message"]
        return None

    def http(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        json_body=None,
        form: dict | None = None,
        headers: dict[str, str] | None = None,
        missing_ok: bool = False,
        raw: bool = False,
    ):
        """One API call; the decoded JSON answer (None for an empty body, or for a 404 when
        ``missing_ok``), or with ``raw`` the body's bytes (a file's contents). Raises
        ProviderAuthError for 401, ProviderError for other failures."""
        sent = dict(headers or {})
        if token is not None:
            sent.update(self.auth_headers(token))
        sent.setdefault("Accept", "application/json")
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            response = outbound.request(method, url, headers=sent, body=body, max_response_bytes=MAX_RESPONSE_BYTES)
        except outbound.DestinationRefused as exc:
            raise ProviderError(f"{self.title} is at an address the registry may not reach: {exc}") from None
        except outbound.OutboundError as exc:
            raise ProviderError(f"{self.title} could not be reached: {exc}") from None
        data = None
        if raw and response.ok:
            if response.truncated:
                raise ProviderError(f"{self.title} answered with more data than the registry accepts")
            return response.body
        if response.body:
            try:
                data = json.loads(response.body)
            except ValueError:
                data = None
        if response.status == 404 and missing_ok:
            return None
        if response.ok:
            if response.truncated:
                raise ProviderError(f"{self.title} answered with more data than the registry accepts")
            return data
        message = self.error_message(data) or response.text_excerpt(200) or f"HTTP {response.status}"
        if response.status == 401:
            raise ProviderAuthError(
                f"{self.title} refused the trigger's authorization ({message}); connect the account again",
                status=401,
            )
        raise ProviderError(f"{self.title} answered {response.status}: {message}", status=response.status)

    def api(self, method: str, path: str, token: str, **kwargs):
        return self.http(method, f"{self.api_url}{path}", token=token, **kwargs)

    # -- OAuth ------------------------------------------------------------------------------

    def authorize_url(self, *, state: str, redirect_uri: str) -> str:
        raise NotImplementedError

    def token_exchange(self, *, code: str, redirect_uri: str) -> Token:
        raise NotImplementedError

    def token_refresh(self, *, refresh_token: str, redirect_uri: str) -> Token:
        raise ProviderAuthError(f"{self.title} tokens cannot be refreshed; connect the account again")

    def token_from(self, data) -> Token:
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) or not data["access_token"]:
            reason = self.error_message(data) or "no access token in the answer"
            raise ProviderError(f"{self.title} did not grant access: {reason}")
        expires = data.get("expires_in")
        return Token(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token") or "",
            expires_in=int(expires) if isinstance(expires, int | float) and not isinstance(expires, bool) else None,
        )

    # -- the setup pickers -------------------------------------------------------------------

    def namespaces(self, token: str) -> list[dict]:
        """Quay's namespace view: ``{personal, id, title, avatar_url, url, score}``."""
        raise NotImplementedError

    def sources(self, token: str, namespace: str) -> list[dict]:
        """Quay's source view: ``{name, full_name, description, last_updated, url,
        has_admin_permissions, private}``."""
        raise NotImplementedError

    def branches(self, token: str, source: str) -> list[str]:
        raise NotImplementedError

    def tags(self, token: str, source: str) -> list[str]:
        raise NotImplementedError

    # -- activation and removal --------------------------------------------------------------

    def repository(self, token: str, source: str) -> SourceRepository:
        raise NotImplementedError

    def deploy_key_add(self, token: str, source: str, *, title: str, public_key: str) -> str:
        raise NotImplementedError

    def deploy_key_remove(self, token: str, source: str, key_id: str) -> None:
        raise NotImplementedError

    def hook_add(self, token: str, source: str, *, url: str, secret: str) -> str:
        raise NotImplementedError

    def hook_remove(self, token: str, source: str, hook_id: str) -> None:
        raise NotImplementedError

    # -- Dockerfiles (the analyze and subdir verbs) -----------------------------------------

    def dockerfile_load(self, token: str, source: str, *, path: str, ref: str) -> str | None:
        """The text of the file at ``path`` on branch ``ref``; None when there is no such file."""
        raise NotImplementedError

    def dockerfile_paths(self, token: str, source: str, *, ref: str) -> list[str]:
        """The paths (from the repository root, no leading ``/``) of the Dockerfiles on ``ref``;
        ``[]`` for an empty repository."""
        raise NotImplementedError

    # -- Run Now ----------------------------------------------------------------------------

    def commit_metadata(self, token: str, source: str, *, revision: str, kind: str | None) -> dict:
        """``{commit, commit_info}`` for a commit SHA (``kind`` None), a branch or a tag."""
        raise NotImplementedError

    # -- webhook deliveries ------------------------------------------------------------------

    def signature_valid(self, *, meta: dict, body: bytes, secret: str) -> bool:
        raise NotImplementedError

    def delivery_id(self, meta: dict) -> str | None:
        value = (meta.get(self.delivery_header) or "").strip()
        return value[:128] or None

    def event_kind(self, meta: dict) -> str:
        """``push`` (build it), ``ping`` (a test delivery) or ``other`` (ignored)."""
        raise NotImplementedError

    def event_name(self, meta: dict) -> str:
        return (meta.get(self.event_header) or "")[:64]

    def push_metadata(self, payload, *, remote: dict, lookup_commit=None) -> dict | None:
        """The trigger metadata of a push delivery; None when there is nothing to build (a
        deleted branch or tag). Raises PayloadError when the payload is not a push payload."""
        raise NotImplementedError

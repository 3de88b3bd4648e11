"""Bitbucket Cloud (REST API 2.0) for build triggers.

OAuth 2 web flow: ``<web>/site/oauth2/authorize`` then ``POST <web>/site/oauth2/access_token``
with the consumer's key and secret as HTTP Basic; access tokens expire after two hours and come
with a refresh token. The callback URL is the one set on the OAuth consumer (Bitbucket does not
take a ``redirect_uri``). API base ``https://api.bitbucket.org/2.0``. A webhook created with a
secret signs each delivery: ``X-Hub-Signature: sha256=<HMAC-SHA256 of the body>``;
``X-Request-UUID`` is the delivery id, ``X-Event-Key`` the event (``repo:push``).
"""

from __future__ import annotations

import base64
import posixpath
from urllib.parse import quote, urlencode

from triggers.metadata import PayloadError
from triggers.providers.base import (
    PAGE_SIZE,
    Provider,
    ProviderError,
    SourceRepository,
    Token,
    commit_info,
    epoch,
    hmac_sha256_matches,
    is_dockerfile_name,
    person,
    ref_names,
)

# The src listing of the subdir verb: directories this deep, and this many pages of entries.
SRC_DEPTH_MAX = 10
SRC_PAGES_MAX = 20


def _repo(source: str) -> str:
    workspace, _, slug = source.partition("/")
    return f"/repositories/{quote(workspace, safe='')}/{quote(slug, safe='')}"


def _href(obj, *names) -> str:
    links = obj.get("links") if isinstance(obj, dict) else None
    if not isinstance(links, dict):
        return ""
    for name in names:
        link = links.get(name)
        if isinstance(link, dict) and isinstance(link.get("href"), str):
            return link["href"]
    return ""


class Bitbucket(Provider):
    service = "bitbucket"
    title = "Bitbucket"
    default_web_url = "https://bitbucket.org"
    delivery_header = "HTTP_X_REQUEST_UUID"
    event_header = "HTTP_X_EVENT_KEY"

    def derived_api_url(self) -> str:
        if self.web_host == "bitbucket.org":
            return "https://api.bitbucket.org/2.0"
        return f"{self.web_url}/2.0"

    # -- OAuth ------------------------------------------------------------------------------

    def authorize_url(self, *, state: str, redirect_uri: str) -> str:
        query = urlencode({"client_id": self.client_id, "response_type": "code", "state": state})
        return f"{self.web_url}/site/oauth2/authorize?{query}"

    def _client_basic(self) -> dict[str, str]:
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def token_exchange(self, *, code: str, redirect_uri: str) -> Token:
        data = self.http(
            "POST",
            f"{self.web_url}/site/oauth2/access_token",
            form={"grant_type": "authorization_code", "code": code},
            headers=self._client_basic(),
        )
        return self.token_from(data)

    def token_refresh(self, *, refresh_token: str, redirect_uri: str) -> Token:
        data = self.http(
            "POST",
            f"{self.web_url}/site/oauth2/access_token",
            form={"grant_type": "refresh_token", "refresh_token": refresh_token},
            headers=self._client_basic(),
        )
        return self.token_from(data)

    def error_message(self, data) -> str | None:
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return data["error"].get("message") or None
        return super().error_message(data)

    # -- pickers ----------------------------------------------------------------------------

    def _values(self, data) -> list[dict]:
        values = data.get("values") if isinstance(data, dict) else None
        return [row for row in values or [] if isinstance(row, dict)]

    def namespaces(self, token: str) -> list[dict]:
        user = self.api("GET", "/user", token) or {}
        username = user.get("username") or user.get("nickname") or ""
        found: dict[str, dict] = {}
        for row in self._values(self.api("GET", f"/user/permissions/workspaces?pagelen={PAGE_SIZE}", token)):
            workspace = row.get("workspace") or {}
            slug = workspace.get("slug")
            if not slug or slug in found:
                continue
            found[slug] = {
                "personal": slug == username,
                "id": slug,
                "title": workspace.get("name") or slug,
                "avatar_url": _href(workspace, "avatar") or None,
                "url": _href(workspace, "html") or f"{self.web_url}/{slug}",
                "score": 1 if row.get("permission") in ("owner", "collaborator") else 0,
            }
        return list(found.values())

    def sources(self, token: str, namespace: str) -> list[dict]:
        base = f"/repositories/{quote(namespace, safe='')}?pagelen={PAGE_SIZE}"
        rows = self._values(self.api("GET", f"{base}&role=member", token, missing_ok=True))
        admin = {
            row.get("full_name") for row in self._values(self.api("GET", f"{base}&role=admin", token, missing_ok=True))
        }
        return [
            {
                "name": row.get("slug") or row.get("name") or "",
                "full_name": row.get("full_name") or "",
                "description": row.get("description") or "",
                "last_updated": epoch(row.get("updated_on")),
                "url": _href(row, "html"),
                "has_admin_permissions": row.get("full_name") in admin,
                "private": bool(row.get("is_private")),
            }
            for row in rows
        ]

    def branches(self, token: str, source: str) -> list[str]:
        rows = self._values(self.api("GET", f"{_repo(source)}/refs/branches?pagelen={PAGE_SIZE}", token))
        return ref_names(rows)

    def tags(self, token: str, source: str) -> list[str]:
        rows = self._values(self.api("GET", f"{_repo(source)}/refs/tags?pagelen={PAGE_SIZE}", token))
        return ref_names(rows)

    # -- activation -------------------------------------------------------------------------

    def repository(self, token: str, source: str) -> SourceRepository:
        data = self.api("GET", _repo(source), token) or {}
        clone = {
            link.get("name"): link.get("href")
            for link in ((data.get("links") or {}).get("clone") or [])
            if isinstance(link, dict)
        }
        return SourceRepository(
            full_name=data.get("full_name") or source,
            git_url=clone.get("ssh") or f"git@{self.web_host}:{source}.git",
            html_url=_href(data, "html") or f"{self.web_url}/{source}",
            default_branch=(data.get("mainbranch") or {}).get("name") or "main",
            project_id=data.get("uuid") or "",
        )

    def deploy_key_add(self, token: str, source: str, *, title: str, public_key: str) -> str:
        data = self.api("POST", f"{_repo(source)}/deploy-keys", token, json_body={"key": public_key, "label": title})
        return str((data or {}).get("id") or "")

    def deploy_key_remove(self, token: str, source: str, key_id: str) -> None:
        self.api("DELETE", f"{_repo(source)}/deploy-keys/{quote(str(key_id), safe='')}", token, missing_ok=True)

    def hook_add(self, token: str, source: str, *, url: str, secret: str) -> str:
        data = self.api(
            "POST",
            f"{_repo(source)}/hooks",
            token,
            json_body={
                "description": "Quay build trigger",
                "url": url,
                "active": True,
                "events": ["repo:push"],
                "secret": secret,
            },
        )
        return str((data or {}).get("uuid") or "")

    def hook_remove(self, token: str, source: str, hook_id: str) -> None:
        self.api("DELETE", f"{_repo(source)}/hooks/{quote(str(hook_id), safe='')}", token, missing_ok=True)

    # -- Dockerfiles ------------------------------------------------------------------------

    def _src(self, source: str, ref: str, path: str = "") -> str:
        return f"{_repo(source)}/src/{quote(ref, safe='')}/{quote(path, safe='/')}"

    def dockerfile_load(self, token: str, source: str, *, path: str, ref: str) -> str | None:
        # The src endpoint answers a file with its raw bytes (a directory with a JSON listing).
        body = self.api("GET", self._src(source, ref, path), token, missing_ok=True, raw=True)
        if body is None:
            return None
        return body.decode("utf-8", errors="replace")

    def dockerfile_paths(self, token: str, source: str, *, ref: str) -> list[str]:
        url = f"{self.api_url}{self._src(source, ref)}?{urlencode({'max_depth': SRC_DEPTH_MAX, 'pagelen': PAGE_SIZE})}"
        found: list[str] = []
        for _ in range(SRC_PAGES_MAX):
            data = self.http("GET", url, token=token, missing_ok=True)
            if data is None:
                return []  # no such branch: an empty repository
            found += [
                row["path"]
                for row in self._values(data)
                if row.get("type") == "commit_file"
                and isinstance(row.get("path"), str)
                and is_dockerfile_name(posixpath.basename(row["path"]))
            ]
            following = data.get("next") if isinstance(data, dict) else None
            # Only pages of the same API: a forged ``next`` must not send the token elsewhere.
            if not isinstance(following, str) or not following.startswith(self.api_url + "/"):
                break
            url = following
        return sorted(found)

    # -- Run Now ----------------------------------------------------------------------------

    def _target(self, target: dict) -> dict:
        author = target.get("author") if isinstance(target.get("author"), dict) else {}
        user = author.get("user") if isinstance(author.get("user"), dict) else None
        if user:
            who = person(user.get("nickname") or user.get("display_name"), _href(user, "html"), _href(user, "avatar"))
        else:
            raw = author.get("raw") if isinstance(author.get("raw"), str) else ""
            who = person(raw.split("<", 1)[0].strip() or None)
        return {
            "commit": target.get("hash") or "",
            "commit_info": commit_info(
                url=_href(target, "html"),
                message=target.get("message"),
                date=target.get("date"),
                author=who,
                committer=None,
            ),
        }

    def commit_metadata(self, token: str, source: str, *, revision: str, kind: str | None) -> dict:
        if kind in ("branch", "tag"):
            folder = "branches" if kind == "branch" else "tags"
            data = self.api("GET", f"{_repo(source)}/refs/{folder}/{quote(revision, safe='')}", token) or {}
            target = data.get("target")
            if not isinstance(target, dict):
                raise ProviderError(f"Bitbucket has no {kind} {revision}")
            return self._target(target)
        data = self.api("GET", f"{_repo(source)}/commit/{quote(revision, safe='')}", token) or {}
        return self._target(data)

    # -- webhooks ---------------------------------------------------------------------------

    def signature_valid(self, *, meta: dict, body: bytes, secret: str) -> bool:
        return hmac_sha256_matches(secret, body, meta.get("HTTP_X_HUB_SIGNATURE"))

    def event_kind(self, meta: dict) -> str:
        return "push" if self.event_name(meta) == "repo:push" else "other"

    def push_metadata(self, payload, *, remote: dict, lookup_commit=None) -> dict | None:
        push = payload.get("push") if isinstance(payload, dict) else None
        if not isinstance(push, dict) or not isinstance(push.get("changes"), list):
            raise PayloadError("a Bitbucket repo:push payload has push.changes")
        # One push may move several refs; as Quay does, the first branch or tag still
        # standing is built (a change whose ``new`` is null deleted its ref).
        for change in push["changes"]:
            new = change.get("new") if isinstance(change, dict) else None
            if not isinstance(new, dict) or new.get("type") not in ("branch", "tag"):
                continue
            target = new.get("target")
            if not isinstance(new.get("name"), str) or not isinstance(target, dict) or not target.get("hash"):
                raise PayloadError("push.changes[].new needs a name and target.hash")
            folder = "heads" if new["type"] == "branch" else "tags"
            built = self._target(target)
            repository = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
            full_name = repository.get("full_name") or remote.get("full_name") or ""
            return {
                "commit": built["commit"],
                "ref": f"refs/{folder}/{new['name']}",
                "default_branch": remote.get("default_branch") or "",
                # The payload carries no clone URL: the one activation read from the API.
                "git_url": remote.get("git_url") or f"git@{self.web_host}:{full_name}.git",
                "commit_info": built["commit_info"],
            }
        return None

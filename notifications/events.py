"""The events a repository notification can listen to: payload, filter, summary and sample.

Payloads are the JSON of the guide's chapter 5, field for field: every event carries
``repository``, ``namespace``, ``name``, ``docker_url`` and ``homepage`` (built from
SERVER_HOSTNAME and PREFERRED_URL_SCHEME), then its own fields. Callers give only the event's
own fields; a field the guide does not list for that event is refused, so a typo in a caller
cannot reach receivers. Fields a caller leaves out are sent with an empty value, so every payload
of an event has the same keys.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass

from django.conf import settings

from notifications.models import Event

# Vulnerability severities, least to most severe (Quay's levels).
SEVERITIES = ["Unknown", "Negligible", "Low", "Medium", "High", "Critical", "Defcon1"]
# Quay's UI and its Ansible collection send the minimum level as an index: 0 is Critical.
QUAY_LEVEL_INDEX = {0: "Critical", 1: "High", 2: "Medium", 3: "Low", 4: "Negligible", 5: "Unknown"}
REF_REGEX_MAX = 255


class EventConfigError(ValueError):
    """An event filter that cannot work (bad regex, unknown level)."""


class EventDataError(ValueError):
    """A caller gave an event fields it does not have, or left out a required one."""


@dataclass(frozen=True)
class Message:
    """What a human reads about an event (e-mail, chat): one line, details, a link."""

    summary: str
    level: str  # info | success | warning | error
    details: list[tuple[str, str]]
    link: str


# ---------------------------------------------------------------------------------------------
# Public addresses


def public_host() -> str:
    """The registry's public host (with port) for links and ``docker_url``.

    SERVER_HOSTNAME when set; otherwise the address the server listens on, which is right for a
    registry used on one machine (set SERVER_HOSTNAME for anything else).
    """
    if settings.SERVER_HOSTNAME:
        return settings.SERVER_HOSTNAME
    host = os.environ.get("HOST", "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    return f"{host}:{os.environ.get('PORT', '8000')}"


def public_url(path: str) -> str:
    scheme = settings.PREFERRED_URL_SCHEME or "http"
    return f"{scheme}://{public_host()}{path}"


def repository_fields(namespace: str, name: str) -> dict:
    full = f"{namespace}/{name}"
    return {
        "repository": full,
        "namespace": namespace,
        "name": name,
        "docker_url": f"{public_host()}/{full}",
        "homepage": public_url(f"/repository/{full}"),
    }


# ---------------------------------------------------------------------------------------------
# Event kinds


class EventKind:
    """Base of the event kinds: ``fields`` are the event's own payload keys with the value sent
    when the caller gives none; ``required`` must be given."""

    name: str = ""
    level: str = "info"
    fields: dict = {}
    required: frozenset[str] = frozenset()

    # Payloads

    def own_fields(self, data: dict) -> dict:
        """The event's own fields from a caller's ``data``, checked, absent ones filled."""
        unknown = set(data) - set(self.fields)
        if unknown:
            raise EventDataError(f"{self.name} has no field {', '.join(sorted(unknown))}")
        missing = {key for key in self.required if data.get(key) in (None, "", [])}
        if missing:
            raise EventDataError(f"{self.name} needs {', '.join(sorted(missing))}")
        own = {key: copy.deepcopy(data.get(key, default)) for key, default in self.fields.items()}
        self.check(own)
        return own

    def complete(self, *, namespace: str, name: str, own: dict) -> dict:
        """The whole payload: the repository's fields, then the event's own."""
        return {**repository_fields(namespace, name), **own, **self.links(namespace, name, own)}

    def payload(self, *, namespace: str, name: str, data: dict) -> dict:
        return self.complete(namespace=namespace, name=name, own=self.own_fields(data))

    def check(self, own: dict) -> None:
        """Type checks of the event's own fields."""

    def links(self, namespace: str, name: str, own: dict) -> dict:
        return {}

    def sample(self, *, namespace: str, name: str, event_config: dict) -> dict:
        return self.payload(namespace=namespace, name=name, data=self.sample_data(event_config))

    def sample_data(self, event_config: dict) -> dict:
        raise NotImplementedError

    # Filters

    def clean_config(self, event_config: dict) -> dict:
        """The filter this event understands, checked; other keys are kept as given (Quay's
        clients send keys of their own, such as ``days``)."""
        return dict(event_config)

    def accepts(self, payload: dict, event_config: dict) -> bool:
        return True

    # Words

    def summary(self, payload: dict) -> str:
        raise NotImplementedError

    def details(self, payload: dict) -> list[tuple[str, str]]:
        return []

    def message(self, payload: dict) -> Message:
        return Message(
            summary=self.summary(payload),
            level=self.level_of(payload),
            details=self.details(payload),
            link=payload.get("homepage", ""),
        )

    def level_of(self, payload: dict) -> str:
        return self.level


def _string_list(value, field: str) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise EventDataError(f"{field} must be a list of strings")


class RepoPush(EventKind):
    name = Event.REPO_PUSH
    level = "success"
    fields = {"updated_tags": []}
    required = frozenset({"updated_tags"})

    def check(self, own):
        _string_list(own["updated_tags"], "updated_tags")

    def sample_data(self, event_config):
        return {"updated_tags": ["latest", "v1.0"]}

    def summary(self, payload):
        tags = payload["updated_tags"]
        return f"New push to {payload['repository']}: {', '.join(tags)}"

    def details(self, payload):
        return [
            ("Repository", payload["repository"]),
            ("Tags", ", ".join(payload["updated_tags"])),
            ("Pull", f"{payload['docker_url']}:{payload['updated_tags'][0]}"),
        ]


# The fields every build event may carry (the guide's build payloads); each event takes a subset.
_BUILD_COMMON = {
    "build_id": None,
    "trigger_kind": None,
    "trigger_id": None,
    "docker_tags": [],
    "trigger_metadata": {},
}


class BuildEvent(EventKind):
    """The five build events: a ``ref-regex`` filter on the git ref that started the build."""

    required = frozenset({"build_id"})
    verb = ""

    def check(self, own):
        _string_list(own["docker_tags"], "docker_tags")
        if not isinstance(own["trigger_metadata"], dict):
            raise EventDataError("trigger_metadata must be an object")
        if not isinstance(own["build_id"], str):
            raise EventDataError("build_id must be a string")

    def links(self, namespace, name, own):
        return {"homepage": public_url(f"/repository/{namespace}/{name}/build/{own['build_id']}")}

    def clean_config(self, event_config):
        cleaned = dict(event_config)
        regex = cleaned.get("ref-regex")
        if regex in (None, ""):
            cleaned.pop("ref-regex", None)
            return cleaned
        if not isinstance(regex, str) or len(regex) > REF_REGEX_MAX:
            raise EventConfigError(f"ref-regex must be a regular expression of at most {REF_REGEX_MAX} characters")
        try:
            re.compile(regex)
        except re.error as exc:
            raise EventConfigError(f"ref-regex is not a valid regular expression: {exc}") from None
        return cleaned

    def accepts(self, payload, event_config):
        regex = event_config.get("ref-regex")
        if not regex:
            return True
        # A build without a git ref (an upload, a URL) never matches a ref filter.
        ref = (payload.get("trigger_metadata") or {}).get("ref")
        if not isinstance(ref, str):
            return False
        try:
            return re.match(regex, ref) is not None
        except re.error:
            return False

    def summary(self, payload):
        return f"Build {str(payload['build_id'])[:8]} {self.verb} for {payload['repository']}"

    def details(self, payload):
        rows = [("Repository", payload["repository"]), ("Build", str(payload["build_id"]))]
        if payload.get("docker_tags"):
            rows.append(("Tags", ", ".join(payload["docker_tags"])))
        ref = (payload.get("trigger_metadata") or {}).get("ref")
        if ref:
            rows.append(("Ref", ref))
        commit = (payload.get("trigger_metadata") or {}).get("commit")
        if commit:
            rows.append(("Commit", commit))
        if payload.get("error_message"):
            rows.append(("Error", payload["error_message"]))
        return rows

    def sample_data(self, event_config):
        data = {
            "build_id": "0f3c5f3e-5d3c-4a43-9f1d-2a4e5b6c7d8e",
            "trigger_kind": "github",
            "trigger_id": "6b1f1a52-7d0b-4f3f-8c0e-1d2b3c4d5e6f",
            "docker_tags": ["latest", "main"],
            "trigger_metadata": {
                "default_branch": "main",
                "ref": "refs/heads/main",
                "commit": "4f2a9c1be0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9",
                "git_url": "git@example.com:team/project.git",
                "commit_info": {
                    "url": "https://example.com/team/project/commit/4f2a9c1be0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9",
                    "date": "2024-01-02T10:00:00+00:00",
                    "message": "A sample commit for a test notification",
                    "author": {"username": "someone", "url": "https://example.com/someone", "avatar_url": ""},
                    "committer": {"username": "someone", "url": "https://example.com/someone", "avatar_url": ""},
                },
            },
        }
        if "build_name" in self.fields:
            data["build_name"] = "4f2a9c1"
        return {key: value for key, value in data.items() if key in self.fields}


class BuildQueued(BuildEvent):
    name = Event.BUILD_QUEUED
    verb = "queued"
    fields = {**_BUILD_COMMON, "repo": None, "is_manual": False, "manual_user": None}

    def complete(self, *, namespace, name, own):
        # The guide's build_queued repeats the repository's name as ``repo``.
        return super().complete(namespace=namespace, name=name, own={**own, "repo": own.get("repo") or name})


class BuildStart(BuildEvent):
    name = Event.BUILD_START
    verb = "started"
    fields = {**_BUILD_COMMON, "build_name": None}


class BuildSuccess(BuildEvent):
    name = Event.BUILD_SUCCESS
    level = "success"
    verb = "succeeded"
    fields = {**_BUILD_COMMON, "build_name": None, "image_id": None, "manifest_digests": []}

    def sample_data(self, event_config):
        return {
            **super().sample_data(event_config),
            "image_id": "sha256:" + "1" * 64,
            "manifest_digests": ["sha256:" + "2" * 64],
        }


class BuildFailure(BuildEvent):
    name = Event.BUILD_FAILURE
    level = "error"
    verb = "failed"
    fields = {**_BUILD_COMMON, "build_name": None, "error_message": None}

    def sample_data(self, event_config):
        return {**super().sample_data(event_config), "error_message": "A sample error: the Dockerfile was not found"}


class BuildCancelled(BuildEvent):
    name = Event.BUILD_CANCELLED
    verb = "cancelled"
    fields = {**_BUILD_COMMON, "build_name": None}


def severity_rank(name) -> int:
    """Position of a severity in SEVERITIES (case-insensitive); unknown names rank as Unknown."""
    lookup = {level.lower(): n for n, level in enumerate(SEVERITIES)}
    return lookup.get(str(name).lower(), 0)


def minimum_severity(level) -> str:
    """A ``level`` filter as Quay's clients send it (an index, as a number or a string) or as a
    severity name, turned into the severity name."""
    if isinstance(level, bool):
        raise EventConfigError("level must be a severity")
    if isinstance(level, int) or (isinstance(level, str) and level.strip().isdigit()):
        index = int(level)
        if index not in QUAY_LEVEL_INDEX:
            raise EventConfigError(f"level must be between 0 (Critical) and {max(QUAY_LEVEL_INDEX)} (Unknown)")
        return QUAY_LEVEL_INDEX[index]
    if isinstance(level, str):
        for severity in SEVERITIES:
            if severity.lower() == level.strip().lower():
                return severity
    raise EventConfigError(f"level must be one of {', '.join(SEVERITIES)} or Quay's index 0-5")


class VulnerabilityFound(EventKind):
    name = Event.VULNERABILITY_FOUND
    fields = {"tags": [], "vulnerability": {}}
    required = frozenset({"tags", "vulnerability"})
    vulnerability_fields = ("id", "description", "link", "priority", "has_fix")

    def check(self, own):
        _string_list(own["tags"], "tags")
        vulnerability = own["vulnerability"]
        if not isinstance(vulnerability, dict) or not vulnerability.get("id"):
            raise EventDataError("vulnerability must be an object with an id")
        unknown = set(vulnerability) - set(self.vulnerability_fields)
        if unknown:
            raise EventDataError(f"vulnerability has no field {', '.join(sorted(unknown))}")
        vulnerability.setdefault("description", "")
        vulnerability.setdefault("link", "")
        vulnerability.setdefault("priority", "Unknown")
        vulnerability.setdefault("has_fix", False)

    def clean_config(self, event_config):
        cleaned = dict(event_config)
        if cleaned.get("level") in (None, ""):
            cleaned.pop("level", None)
        else:
            minimum_severity(cleaned["level"])
        return cleaned

    def accepts(self, payload, event_config):
        level = event_config.get("level")
        if level in (None, ""):
            return True
        return severity_rank(payload["vulnerability"].get("priority")) >= severity_rank(minimum_severity(level))

    def level_of(self, payload):
        rank = severity_rank(payload["vulnerability"].get("priority"))
        if rank >= severity_rank("Critical"):
            return "error"
        return "warning" if rank >= severity_rank("Medium") else "info"

    def summary(self, payload):
        vulnerability = payload["vulnerability"]
        count = len(payload["tags"])
        return (
            f"{vulnerability.get('priority', 'Unknown')} vulnerability {vulnerability['id']} found in "
            f"{payload['repository']} ({count} tag{'s' if count != 1 else ''})"
        )

    def details(self, payload):
        vulnerability = payload["vulnerability"]
        rows = [
            ("Repository", payload["repository"]),
            ("Tags", ", ".join(payload["tags"])),
            ("Vulnerability", str(vulnerability["id"])),
            ("Severity", str(vulnerability.get("priority", "Unknown"))),
            ("Fix available", "yes" if vulnerability.get("has_fix") else "no"),
        ]
        if vulnerability.get("description"):
            rows.append(("Description", str(vulnerability["description"])))
        if vulnerability.get("link"):
            rows.append(("More", str(vulnerability["link"])))
        return rows

    def sample_data(self, event_config):
        level = event_config.get("level")
        priority = minimum_severity(level) if level not in (None, "") else "Critical"
        return {
            "tags": ["latest", "v1.0"],
            "vulnerability": {
                "id": "CVE-2000-0001",
                "description": "A sample vulnerability for a test notification",
                "link": "https://example.com/advisories/CVE-2000-0001",
                "priority": priority,
                "has_fix": True,
            },
        }


EVENTS: dict[str, EventKind] = {
    kind.name: kind
    for kind in (
        RepoPush(),
        BuildQueued(),
        BuildStart(),
        BuildSuccess(),
        BuildFailure(),
        BuildCancelled(),
        VulnerabilityFound(),
    )
}


def get_event(name: str) -> EventKind:
    try:
        return EVENTS[name]
    except KeyError:
        raise EventDataError(f"Unknown event {name!r}") from None

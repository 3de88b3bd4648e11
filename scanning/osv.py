"""OSV advisories: reading them (files, directories, the per-ecosystem zips OSV publishes),
checking them, and deciding whether a version is affected. Pure: no database.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.utils.dateparse import parse_datetime

from scanning import cvss, versions

# The ecosystems the scanner matches, by the part before the first colon.
ECOSYSTEMS = ("Debian", "Ubuntu", "Alpine", "PyPI", "npm")
ADVISORY_MAX_BYTES = 16 * 1024 * 1024


class AdvisoryError(ValueError):
    """An advisory that is not valid OSV (or uses it in a way the scanner cannot follow)."""


@dataclass
class Affected:
    ecosystem: str
    name: str
    ranges: list[dict]
    versions: list[str]


@dataclass
class Advisory:
    osv_id: str
    summary: str
    details: str
    aliases: list[str]
    severity: str
    cvss_vector: str
    cvss_score: float | None
    link: str
    published: datetime | None
    modified: datetime | None
    withdrawn: datetime | None
    affected: list[Affected] = field(default_factory=list)


def normalize_ecosystem(ecosystem: str) -> str:
    """``Ubuntu:22.04:LTS`` -> ``Ubuntu:22.04`` (the LTS mark is not in os-release)."""
    if ecosystem.startswith("Ubuntu:") and ecosystem.endswith(":LTS"):
        return ecosystem[: -len(":LTS")]
    return ecosystem


def normalize_name(ecosystem: str, name: str) -> str:
    if ecosystem == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503
    return name


def _date(value, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise AdvisoryError(f"{what} is not an RFC 3339 time: {value!r}")
    return parsed


def _severity(doc: dict) -> tuple[str, str, float | None]:
    """CVSS v3 first (the score is computed from the vector); else the source's own rating."""
    for entry in doc.get("severity") or []:
        if isinstance(entry, dict) and entry.get("type") == "CVSS_V3" and isinstance(entry.get("score"), str):
            try:
                score = cvss.cvss3_base_score(entry["score"])
            except cvss.CvssError as exc:
                raise AdvisoryError(str(exc)) from None
            return cvss.severity_for_score(score), entry["score"], score
    words = [(doc.get("database_specific") or {}).get("severity")]
    for entry in doc.get("severity") or []:
        if isinstance(entry, dict) and entry.get("type") == "Ubuntu":
            words.append(entry.get("score"))
    for affected in doc.get("affected") or []:
        if isinstance(affected, dict):
            words.append((affected.get("ecosystem_specific") or {}).get("severity"))
            words.append((affected.get("database_specific") or {}).get("severity"))
    for word in words:
        name = cvss.severity_from_word(word)
        if name:
            return name, "", None
    return "Unknown", "", None


def _link(doc: dict) -> str:
    references = [r for r in doc.get("references") or [] if isinstance(r, dict) and isinstance(r.get("url"), str)]
    for wanted in ("ADVISORY", "WEB"):
        for reference in references:
            if reference.get("type") == wanted:
                return reference["url"]
    if references:
        return references[0]["url"]
    return f"https://osv.dev/vulnerability/{doc['id']}"


def parse_advisory(doc) -> Advisory:
    """Check one OSV document and keep what the scanner uses (ecosystems it does not match are
    dropped; an advisory left with none of ours is still recorded, with no affected rows)."""
    if not isinstance(doc, dict):
        raise AdvisoryError("an advisory must be a JSON object")
    osv_id = doc.get("id")
    if not isinstance(osv_id, str) or not osv_id.strip() or len(osv_id) > 255:
        raise AdvisoryError("the advisory has no id")
    for key in ("summary", "details"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise AdvisoryError(f"{osv_id}: {key} must be a string")
    if not isinstance(doc.get("affected", []), list):
        raise AdvisoryError(f"{osv_id}: affected must be a list")
    severity, vector, score = _severity(doc)
    advisory = Advisory(
        osv_id=osv_id,
        summary=doc.get("summary") or "",
        details=doc.get("details") or "",
        aliases=[a for a in doc.get("aliases") or [] if isinstance(a, str)],
        severity=severity,
        cvss_vector=vector,
        cvss_score=score,
        link=_link(doc)[:1024],
        published=_date(doc.get("published"), f"{osv_id}: published"),
        modified=_date(doc.get("modified"), f"{osv_id}: modified"),
        withdrawn=_date(doc.get("withdrawn"), f"{osv_id}: withdrawn"),
    )
    for number, entry in enumerate(doc.get("affected") or []):
        where = f"{osv_id}: affected[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("package"), dict):
            raise AdvisoryError(f"{where} has no package")
        ecosystem, name = entry["package"].get("ecosystem"), entry["package"].get("name")
        if not isinstance(ecosystem, str) or not isinstance(name, str) or not ecosystem or not name:
            raise AdvisoryError(f"{where}: the package needs an ecosystem and a name")
        ecosystem = normalize_ecosystem(ecosystem)
        version_format = versions.format_for_ecosystem(ecosystem)
        if version_format is None:
            continue
        ranges = []
        for range_number, item in enumerate(entry.get("ranges") or []):
            rwhere = f"{where}.ranges[{range_number}]"
            if not isinstance(item, dict) or not isinstance(item.get("events"), list):
                raise AdvisoryError(f"{rwhere} has no events")
            if item.get("type") not in ("ECOSYSTEM", "SEMVER", "GIT"):
                raise AdvisoryError(f"{rwhere}: unknown range type {item.get('type')!r}")
            if item["type"] == "GIT":
                continue  # commits, not package versions
            events = []
            for event in item["events"]:
                if not isinstance(event, dict) or len(event) != 1:
                    raise AdvisoryError(f"{rwhere}: an event must have exactly one of introduced/fixed/last_affected")
                ((kind, value),) = event.items()
                if kind == "limit":
                    continue
                if kind not in ("introduced", "fixed", "last_affected") or not isinstance(value, str) or not value:
                    raise AdvisoryError(f"{rwhere}: bad event {event!r}")
                if not (kind == "introduced" and value == "0"):
                    try:
                        versions.check(version_format, value)
                    except versions.VersionError as exc:
                        raise AdvisoryError(f"{rwhere}: {exc}") from None
                events.append({kind: value})
            if not any("introduced" in e for e in events):
                raise AdvisoryError(f"{rwhere}: no introduced event")
            ranges.append({"type": item["type"], "events": events})
        listed = entry.get("versions") or []
        if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
            raise AdvisoryError(f"{where}: versions must be a list of strings")
        if not ranges and not listed:
            continue
        advisory.affected.append(Affected(ecosystem, normalize_name(ecosystem, name), ranges, list(listed)))
    return advisory


def read_source(path: str) -> Iterator[tuple[str, object]]:
    """(where, parsed JSON or an AdvisoryError) for each advisory in a .json file, a .zip, or a
    directory of them; a file that is not JSON comes out as its error, the rest still come."""
    if os.path.isdir(path):
        for root, _dirs, files in os.walk(path):
            for name in sorted(files):
                if name.endswith((".json", ".zip")):
                    yield from read_source(os.path.join(root, name))
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                where = f"{os.path.basename(path)}:{info.filename}"
                if info.file_size > ADVISORY_MAX_BYTES:
                    yield where, AdvisoryError(f"{where} is over {ADVISORY_MAX_BYTES} bytes")
                    continue
                yield where, _loads(archive.read(info), where)
        return
    with open(path, "rb") as f:
        data = f.read(ADVISORY_MAX_BYTES + 1)
    if len(data) > ADVISORY_MAX_BYTES:
        yield path, AdvisoryError(f"{path} is over {ADVISORY_MAX_BYTES} bytes")
        return
    yield path, _loads(data, path)


def _loads(data: bytes, where: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return AdvisoryError(f"{where} is not JSON: {exc}")


# -- matching --------------------------------------------------------------------------------


def _event_version(event: dict) -> str:
    return next(iter(event.values()))


def sorted_events(version_format: str, events: list[dict]) -> list[dict]:
    key = versions.sort_key(version_format)

    def order(event):
        value = _event_version(event)
        # introduced "0" means "from the first version": before everything.
        return (0, key("0")) if ("introduced" in event and value == "0") else (1, key(value))

    return sorted(events, key=order)


def affects(version_format: str, version: str, ranges: list[dict], listed: list[str]) -> tuple[bool, str]:
    """Whether ``version`` is affected, and the version that fixes it ("" when none is known).

    Ranges follow the OSV evaluation: events in version order; an introduced at or below the
    version opens, a fixed at or below it (or a last_affected below it) closes. ``ranges`` must
    hold sorted events (``sorted_events``)."""
    hit = version in listed
    fixed_by = ""
    for item in ranges:
        affected, fix = _in_range(version_format, version, item["events"])
        if affected:
            hit = True
            if fix and (not fixed_by or versions.compare(version_format, fix, fixed_by) < 0):
                fixed_by = fix
    return hit, fixed_by


def _in_range(version_format: str, version: str, events: list[dict]) -> tuple[bool, str]:
    affected = False
    for event in events:
        ((kind, value),) = event.items()
        if kind == "introduced":
            if value == "0" or versions.compare(version_format, version, value) >= 0:
                affected = True
            else:
                break
        elif kind == "fixed":
            if versions.compare(version_format, version, value) >= 0:
                affected = False
            else:
                return affected, value if affected else ""
        elif kind == "last_affected":
            if versions.compare(version_format, version, value) > 0:
                affected = False
            else:
                return affected, ""
    return affected, ""

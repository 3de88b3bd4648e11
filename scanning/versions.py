"""Version ordering per ecosystem: dpkg, apk, PEP 440 and semver (npm).

PEP 440 comes from ``packaging`` (already a dependency of several of our requirements, now
pinned in requirements.txt). dpkg, apk and semver orderings are written here rather than taken
from ``univers``: each is a short, precisely specified algorithm (Debian policy 5.6.12, apk-tools'
version.c / Gentoo's ordering, semver 2.0.0 section 11), the re-match after an advisory import
calls them for every distinct installed version of every advised package, so they sit on a hot
path where plain functions on cached parses are cheaper than library value objects, and it
keeps the scanner to one small dependency instead of four (univers pulls attrs, semver and
semantic-version). The edge cases are pinned by tests/scanning/test_versions.py.
"""

from __future__ import annotations

import re
from functools import cmp_to_key, lru_cache

from packaging.version import InvalidVersion, Version

DPKG, APK, PEP440, SEMVER, RPM = "dpkg", "apk", "pep440", "semver", "rpm"


class VersionError(ValueError):
    """A version string the ecosystem's grammar does not allow."""


def format_for_ecosystem(ecosystem: str) -> str | None:
    """The version format of an OSV ecosystem name (``Debian:12``, ``Alpine:v3.19``, ``PyPI``)."""
    base = ecosystem.split(":", 1)[0]
    return {"Debian": DPKG, "Ubuntu": DPKG, "Alpine": APK, "PyPI": PEP440, "npm": SEMVER}.get(base)


def compare(version_format: str, a: str, b: str) -> int:
    """Negative, zero or positive as ``a`` sorts before, with or after ``b``."""
    if a == b:
        return 0
    if version_format == DPKG:
        return _dpkg_compare(a, b)
    if version_format == APK:
        return _apk_compare_parsed(_apk_parse(a), _apk_parse(b))
    if version_format == PEP440:
        pa, pb = _pep440(a), _pep440(b)
        return (pa > pb) - (pa < pb)
    if version_format == SEMVER:
        return _semver_compare(_semver_parse(a), _semver_parse(b))
    raise VersionError(f"no ordering for version format {version_format!r}")


def sort_key(version_format: str):
    return cmp_to_key(lambda a, b: compare(version_format, a, b))


# -- dpkg ------------------------------------------------------------------------------------

_DPKG_RE = re.compile(r"^(?:(\d+):)?([0-9A-Za-z][A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?$")


@lru_cache(maxsize=65536)
def _dpkg_parse(version: str) -> tuple[int, str, str]:
    version = version.strip()
    match = _DPKG_RE.match(version)
    if not match:
        raise VersionError(f"not a Debian version: {version!r}")
    epoch, upstream, revision = match.groups()
    if ":" in upstream and epoch is None:
        raise VersionError(f"a colon without an epoch in {version!r}")
    return int(epoch or 0), upstream, revision or ""


def _dpkg_order(char: str) -> int:
    # Policy 5.6.12: a tilde sorts before everything, even the end of the part; letters sort
    # before non-letters.
    if char == "~":
        return -1
    if char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _dpkg_part_compare(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _dpkg_order(a[i]) if i < len(a) else 0
            bc = _dpkg_order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _dpkg_compare(a: str, b: str) -> int:
    ea, ua, ra = _dpkg_parse(a)
    eb, ub, rb = _dpkg_parse(b)
    if ea != eb:
        return ea - eb
    return _dpkg_part_compare(ua, ub) or _dpkg_part_compare(ra, rb)


# -- apk -------------------------------------------------------------------------------------

# Pre-release suffixes sort before the plain version, post-release ones after it.
_APK_SUFFIXES = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1, "cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5}
_APK_RE = re.compile(
    r"^(\d+(?:\.\d+)*)([a-z]?)((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)(?:~[0-9a-f]+)?(?:-r(\d+))?$"
)
_APK_SUFFIX_RE = re.compile(r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)")


@lru_cache(maxsize=65536)
def _apk_parse(version: str):
    match = _APK_RE.match(version.strip())
    if not match:
        raise VersionError(f"not an Alpine version: {version!r}")
    numbers, letter, suffixes, revision = match.groups()
    suffix_list = tuple((_APK_SUFFIXES[name], int(num or 0)) for name, num in _APK_SUFFIX_RE.findall(suffixes))
    return tuple(numbers.split(".")), letter, suffix_list, int(revision or 0)


def _apk_number_compare(first: bool, a: str, b: str) -> int:
    # After the first number, a part with a leading zero compares as a decimal fraction
    # (Gentoo's rule that apk follows): 1.01 < 1.1, 1.001 < 1.01.
    if not first and (a.startswith("0") or b.startswith("0")):
        a, b = a.rstrip("0"), b.rstrip("0")
        return (a > b) - (a < b)
    return (int(a) > int(b)) - (int(a) < int(b))


def _apk_compare_parsed(a, b) -> int:
    na, la, sa, ra = a
    nb, lb, sb, rb = b
    for index, (x, y) in enumerate(zip(na, nb, strict=False)):
        result = _apk_number_compare(index == 0, x, y)
        if result:
            return result
    if len(na) != len(nb):
        return 1 if len(na) > len(nb) else -1
    if la != lb:
        return (la > lb) - (la < lb)
    for index in range(max(len(sa), len(sb))):
        # A missing suffix is the plain release: after alpha..rc, before cvs..p.
        x = sa[index] if index < len(sa) else (0, 0)
        y = sb[index] if index < len(sb) else (0, 0)
        if x != y:
            return (x > y) - (x < y)
    return (ra > rb) - (ra < rb)


# -- PEP 440 ---------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _pep440(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        raise VersionError(f"not a PEP 440 version: {version!r}") from None


# -- semver ----------------------------------------------------------------------------------

_SEMVER_RE = re.compile(r"^[v=]?\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


@lru_cache(maxsize=65536)
def _semver_parse(version: str):
    match = _SEMVER_RE.match(version.strip())
    if not match:
        raise VersionError(f"not a semantic version: {version!r}")
    major, minor, patch, pre = match.groups()
    identifiers = ()
    if pre:
        # Numeric identifiers sort before alphanumeric ones (the leading 0/1 does that).
        identifiers = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor or 0), int(patch or 0)), identifiers


def _semver_compare(a, b) -> int:
    (ca, pa), (cb, pb) = a, b
    if ca != cb:
        return (ca > cb) - (ca < cb)
    if pa == pb:
        return 0
    # A pre-release sorts before its release; between pre-releases, identifier by identifier,
    # and a shorter list first when it is a prefix of the other.
    if not pa or not pb:
        return 1 if not pa else -1
    return (pa > pb) - (pa < pb)


def check(version_format: str, version: str) -> None:
    """Raise VersionError when ``version`` is not valid in ``version_format``."""
    {DPKG: _dpkg_parse, APK: _apk_parse, PEP440: _pep440, SEMVER: _semver_parse}[version_format](version)

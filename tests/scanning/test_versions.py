"""Version ordering per ecosystem, OSV range evaluation, and CVSS v3 base scores."""

import pytest

from scanning import cvss, osv, versions
from scanning.versions import APK, DPKG, PEP440, SEMVER


def sign(value: int) -> int:
    return (value > 0) - (value < 0)


@pytest.mark.parametrize(
    ("version_format", "a", "b", "expected"),
    [
        (DPKG, "1.0~rc1", "1.0", -1),  # a tilde sorts before the end of the part
        (DPKG, "1.0~~", "1.0~", -1),
        (DPKG, "1.0-1~bpo1", "1.0-1", -1),
        (DPKG, "1:0.1", "2.0", 1),  # the epoch wins
        (DPKG, "0:1.0", "1.0", 0),
        (DPKG, "1.0", "1.0-0", 0),  # an absent revision is revision 0
        (DPKG, "2.36-9+deb12u4", "2.36-9", 1),
        (DPKG, "1.0a", "1.0+", -1),  # letters before other characters
        (DPKG, "1.10", "1.9", 1),
        (DPKG, "1.001", "1.1", 0),  # numbers compare as numbers
        (APK, "1.2.3-r1", "1.2.3-r0", 1),
        (APK, "1.2.3", "1.2.3-r0", 0),
        (APK, "1.2_rc1", "1.2", -1),  # pre-release suffixes sort first
        (APK, "1.2_alpha2", "1.2_beta1", -1),
        (APK, "1.2_p1", "1.2", 1),  # a patch suffix sorts after
        (APK, "1.2a", "1.2", 1),
        (APK, "1.2.1", "1.2a", 1),
        (APK, "1.01", "1.1", -1),  # a leading zero makes a decimal fraction
        (APK, "1.10", "1.9", 1),
        (APK, "1.2.4_git20230717-r4", "1.2.4-r5", 1),
        (PEP440, "1.0rc1", "1.0", -1),
        (PEP440, "1.0.post1", "1.0", 1),
        (PEP440, "1.0.dev1", "1.0a1", -1),
        (PEP440, "1!0.1", "2.0", 1),
        (PEP440, "1.0", "1.0.0", 0),
        (SEMVER, "1.0.0-alpha", "1.0.0", -1),
        (SEMVER, "1.0.0-alpha.1", "1.0.0-alpha", 1),
        (SEMVER, "1.0.0-alpha.beta", "1.0.0-alpha.1", 1),  # alphanumeric after numeric
        (SEMVER, "1.0.0-2", "1.0.0-11", -1),  # numeric identifiers as numbers
        (SEMVER, "1.0.0+build.5", "1.0.0", 0),  # build metadata does not count
        (SEMVER, "v2.0.0", "1.99.99", 1),
    ],
)
def test_version_ordering(version_format, a, b, expected):
    assert sign(versions.compare(version_format, a, b)) == expected
    assert sign(versions.compare(version_format, b, a)) == -expected


@pytest.mark.parametrize(
    ("version_format", "bad"),
    [(DPKG, "not a version!"), (DPKG, "a:1.0"), (APK, "1.2-r"), (APK, "abc"), (PEP440, "one"), (SEMVER, "1.x")],
)
def test_invalid_versions_are_errors(version_format, bad):
    with pytest.raises(versions.VersionError):
        versions.check(version_format, bad)


def ranges(version_format, *events):
    return [{"type": "ECOSYSTEM", "events": osv.sorted_events(version_format, list(events))}]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.9", (False, "")),
        ("1.0", (True, "1.2")),
        ("1.1", (True, "1.2")),
        ("1.2", (False, "")),
        ("1.5", (False, "")),
        ("2.0", (True, "")),  # second interval: introduced 2.0, last affected 2.1
        ("2.1", (True, "")),
        ("2.2", (False, "")),
        ("3.0", (True, "3.1")),
    ],
)
def test_osv_ranges_with_several_intervals(version, expected):
    # Events given out of order: the evaluation sorts them.
    r = ranges(
        PEP440,
        {"fixed": "3.1"},
        {"introduced": "1.0"},
        {"fixed": "1.2"},
        {"introduced": "2.0"},
        {"last_affected": "2.1"},
        {"introduced": "3.0"},
    )
    assert osv.affects(PEP440, version, r, []) == expected


def test_an_explicit_versions_list_matches_without_ranges():
    assert osv.affects(SEMVER, "1.2.3", [], ["1.2.3", "1.2.4"]) == (True, "")
    assert osv.affects(SEMVER, "1.2.5", [], ["1.2.3", "1.2.4"]) == (False, "")


def test_introduced_zero_covers_every_version_and_dpkg_tildes_are_respected():
    r = ranges(DPKG, {"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"})
    assert osv.affects(DPKG, "3.0.11-1~deb12u1", r, []) == (True, "3.0.11-1~deb12u2")
    assert osv.affects(DPKG, "3.0.11-1", r, []) == (False, "")
    assert osv.affects(DPKG, "0.1-1", r, []) == (True, "3.0.11-1~deb12u2")


@pytest.mark.parametrize(
    ("vector", "score", "severity"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, "Critical"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0, "Critical"),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5, "Medium"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, "Medium"),
        ("CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 3.1, "Low"),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8, "High"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, "Negligible"),
    ],
)
def test_cvss3_base_scores(vector, score, severity):
    assert cvss.cvss3_base_score(vector) == score
    assert cvss.severity_for_score(score) == severity


def test_an_incomplete_cvss_vector_is_an_error():
    with pytest.raises(cvss.CvssError):
        cvss.cvss3_base_score("CVSS:3.1/AV:N/AC:L")


def test_advisory_severity_prefers_cvss_then_the_sources_word():
    base = {"id": "X-1", "affected": []}
    assert osv.parse_advisory({**base, "database_specific": {"severity": "MODERATE"}}).severity == "Medium"
    assert (
        osv.parse_advisory({**base, "severity": [{"type": "Ubuntu", "score": "negligible"}]}).severity == "Negligible"
    )
    assert osv.parse_advisory(base).severity == "Unknown"
    doc = {**base, "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}]}
    assert osv.parse_advisory({**doc, "database_specific": {"severity": "LOW"}}).severity == "High"


def test_ubuntu_lts_ecosystems_and_pypi_names_are_normalized():
    doc = {
        "id": "UBUNTU-CVE-1",
        "affected": [
            {"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "openssl"}, "versions": ["3.0.2-0ubuntu1.10"]},
            {"package": {"ecosystem": "PyPI", "name": "Zope.Interface"}, "versions": ["5.0"]},
            {"package": {"ecosystem": "Maven", "name": "x:y"}, "versions": ["1"]},
        ],
    }
    parsed = osv.parse_advisory(doc)
    assert [(a.ecosystem, a.name) for a in parsed.affected] == [("Ubuntu:22.04", "openssl"), ("PyPI", "zope-interface")]

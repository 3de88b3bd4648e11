"""Severity of an advisory: a CVSS v3 base score from its vector, or the source's own rating.

The base score is computed from the vector (CVSS v3.1 specification, section 7) because OSV
carries only the vector string; the score then maps to Quay's severity names with the
specification's qualitative bands.
"""

from __future__ import annotations

import math

SEVERITIES = ["Unknown", "Negligible", "Low", "Medium", "High", "Critical"]

_WEIGHTS = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
# Privileges Required weighs more when the scope changes.
_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}

# Words sources use for their own rating (GitHub, Ubuntu priorities, Debian urgencies).
_WORDS = {
    "critical": "Critical",
    "high": "High",
    "important": "High",
    "moderate": "Medium",
    "medium": "Medium",
    "low": "Low",
    "negligible": "Negligible",
    "unimportant": "Negligible",
}


class CvssError(ValueError):
    """A CVSS v3 vector that is incomplete or has values the specification does not define."""


def _roundup(value: float) -> float:
    # The specification's Roundup: the smallest one-decimal number >= value, computed on
    # integers so that floating-point noise (e.g. 4.000000001) does not add 0.1.
    scaled = round(value * 100000)
    if scaled % 10000 == 0:
        return scaled / 100000.0
    return (math.floor(scaled / 10000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float:
    parts = vector.strip().split("/")
    if not parts or not parts[0].startswith("CVSS:3"):
        raise CvssError(f"not a CVSS v3 vector: {vector!r}")
    metrics = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep:
            raise CvssError(f"bad metric {part!r} in {vector!r}")
        metrics[key] = value
    try:
        scope = metrics["S"]
        av, ac, ui = (_WEIGHTS[k][metrics[k]] for k in ("AV", "AC", "UI"))
        c, i, a = (_WEIGHTS[k][metrics[k]] for k in ("C", "I", "A"))
        pr = _PR[scope][metrics["PR"]]
    except KeyError as exc:
        raise CvssError(f"incomplete or invalid CVSS v3 vector {vector!r} ({exc})") from None
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * av * ac * pr * ui
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def severity_for_score(score: float) -> str:
    if score >= 9.0:
        return "Critical"
    if score >= 7.0:
        return "High"
    if score >= 4.0:
        return "Medium"
    if score > 0.0:
        return "Low"
    return "Negligible"


def severity_from_word(word) -> str | None:
    if not isinstance(word, str):
        return None
    return _WORDS.get(word.strip().lower())


def severity_rank(name: str) -> int:
    return SEVERITIES.index(name) if name in SEVERITIES else 0

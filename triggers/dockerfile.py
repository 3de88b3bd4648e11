"""What the analyze verb reads from a Dockerfile: the base image of the FROM line.

As Quay does it: comments and line continuations first, then the last ``FROM`` wins (the image
of the final stage is what the build produces, and it is the one whose pull may need a robot).
``--platform=...`` and ``AS <stage>`` are not part of the image reference. A ``FROM`` naming an
earlier stage is followed back to that stage's own base image.
"""

from __future__ import annotations

import re

_CONTINUATION_RE = re.compile(r"\\[ \t]*\r?\n")
_INSTRUCTION_RE = re.compile(r"([A-Za-z]+)\s+(.*)")


def _instructions(contents: str) -> list[tuple[str, str]]:
    # A comment is a line whose first non-blank character is '#' (a '#' later in a line is data).
    kept = [line for line in contents.splitlines() if not line.lstrip().startswith("#")]
    joined = _CONTINUATION_RE.sub(" ", "\n".join(kept) + "\n")
    found = []
    for line in joined.splitlines():
        match = _INSTRUCTION_RE.fullmatch(line.strip())
        if match:
            found.append((match.group(1).upper(), match.group(2).strip()))
    return found


def image_without_tag(reference: str) -> str:
    """``host:5000/ns/repo:tag`` -> ``host:5000/ns/repo``; a digest is dropped as well."""
    name = reference.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def base_image(contents: str) -> str | None:
    """The base image (no tag) of the Dockerfile's final stage; None without a FROM line."""
    stages: dict[str, str] = {}
    image = None
    for instruction, arguments in _instructions(contents):
        if instruction != "FROM":
            continue
        words = [word for word in arguments.split() if not word.startswith("--")]
        if not words:
            continue
        reference = words[0]
        # An earlier stage named here stands for that stage's base image.
        image = stages.get(reference.lower(), reference)
        if len(words) >= 3 and words[1].lower() == "as":
            stages[words[2].lower()] = image
    return image_without_tag(image) if image else None

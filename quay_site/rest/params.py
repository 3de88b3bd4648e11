"""Query parameters of /api/v1 parsed at the edge, so a bad one is a 400 and never reaches SQL."""

from __future__ import annotations

from quay_site.rest.errors import InvalidRequest


def int_param(request, name: str, default: int | None, *, low: int | None = None, high: int | None = None):
    """The integer query parameter ``name`` (``default`` when absent or empty), refused outside
    [low, high] when they are given.

    A caller without bounds must bound the number itself before it reaches LIMIT or OFFSET,
    where SQLite stops at 64 bits with an error (the API fuzz test found robots'
    ``?limit=185335231238011441119232`` answered 500).
    """
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidRequest(f"{name} must be between {low} and {high}")
    return value

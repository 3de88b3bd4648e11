"""Brute-force protection for the registry token endpoint.

Only failed credential checks are counted (per client address, in the shared cache), so CI
pipelines that log in a lot are never slowed down, while password guessing is cut off after
LOGIN_FAILURES_PER_WINDOW misses until the window has passed.
"""

from django.conf import settings
from django.core.cache import cache


def _key(ip: str | None) -> str:
    return f"registry-login-failures:{ip or 'unknown'}"


def blocked(ip: str | None) -> bool:
    return (cache.get(_key(ip)) or 0) >= settings.LOGIN_FAILURES_PER_WINDOW


def record(ip: str | None) -> None:
    key = _key(ip)
    # add() starts the window; incr() keeps its expiry.
    if not cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS):
        try:
            cache.incr(key)
        except ValueError:
            cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)

"""Helpers of the observability tests: /metrics read the way Prometheus reads it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One /metrics answer, parsed: ``value(name, **labels)`` is the sample's value (0 when the
    series does not exist yet, as for a counter nothing has incremented)."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def series(self, name: str) -> dict[frozenset, float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}

    def delta(self, before: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - before.value(name, **labels)


def scrape(client) -> Scrape:
    """/metrics through a Django test client (REMOTE_ADDR 127.0.0.1: allowed by default)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return Scrape(response.content.decode())


REDIS_NOT_USED = "redis: not used (REDIS_URL is empty)"


def expected_health(settings, *, failed: dict[str, str] | None = None) -> tuple[dict, int]:
    """The body and status for this configuration: every service up except ``failed`` (name ->
    its note). Redis is a service only when REDIS_URL is set."""
    failed = failed or {}
    names = ["database", *(["redis"] if settings.REDIS_URL else []), "storage", "auth"]
    services = {name: name not in failed for name in names}
    notes = [failed[name] for name in names if name in failed]
    if not settings.REDIS_URL:
        notes.append(REDIS_NOT_USED)
    status = 503 if failed else 200
    return {"data": {"services": services, "notes": notes}, "status_code": status}, status

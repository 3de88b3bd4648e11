"""Celery tasks of squashed downloads: thin wrappers that call services."""

from celery import shared_task

from squash import services


@shared_task(name="squash.prime", ignore_result=True)
def squash_prime_task(repository_id: int, tag: str, manifest_id: int, targets: list[list[str]]) -> list[int]:
    """Squash the image a tag was just pointed at, so the next download is served from the cache
    (the guide's "Prime the cache!" done for the user). ``targets``: [host, platform] pairs."""
    return services.squash_prime(repository_id=repository_id, tag=tag, manifest_id=manifest_id, targets=targets)

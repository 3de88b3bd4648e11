"""The embedded default's Celery broker: kombu's filesystem transport with whole-file publishes.

kombu's own transport creates a message file under its final name and only then writes it, while
a consumer moves away and reads any file with a queue's name without taking the writer's lock. A
worker polling at the moment a web process publishes can therefore read an empty message, and the
JSON error stops the worker (kombu issue #1551, open; seen here under the benchmark's token load).
No maintained transport serves a server-less single machine, so this one keeps kombu's and
changes only the publish: the message is written under a name no consumer looks at and renamed
into place, which on one filesystem is atomic, so a consumer sees a whole message or none.
"""

from __future__ import annotations

import logging
import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)

# Suffix of a message being written: kombu's consumer takes only names ending in ".<queue>.msg".
_PARTIAL = ".partial"


class Channel(filesystem.Channel):
    """A filesystem channel whose messages appear in the queue folder only once complete."""

    def _put(self, queue, payload, **kwargs):
        final = os.path.join(
            self.data_folder_out, f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        )
        partial = final + _PARTIAL
        try:
            with open(partial, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise filesystem.ChannelError(f"Cannot add a message to {self.data_folder_out!r}") from exc

    def _get(self, queue):
        # Files written by kombu's own transport (an installation upgraded with messages queued)
        # can still be torn: one that does not decode is dropped with a warning instead of
        # stopping the worker, which would otherwise read it again on every start.
        while True:
            try:
                return super()._get(queue)
            except ValueError as exc:
                logger.warning("dropped an undecodable message from queue %s: %s", queue, exc)


class Transport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel

"""Websocket consumers (Daphne): build workers at ``/ws/builder/``, live build logs at
``/ws/build/<uuid>/``. Thin: the decisions are builds.manager's, the reads builds.selectors'.

A consumer handles one message at a time, so its small amount of state (the jobs it sent) needs
no lock; everything that matters after a restart is in the database.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from builds import manager, selectors, wakeup
from builds.models import Build, BuildWorker
from registry.rest.access import role_on

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's): a refused worker, and for browsers the
# websocket forms of 401 and 404.
CLOSE_REFUSED = 4003
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# A connection that has not registered by then is dropped.
REGISTER_TIMEOUT_SECONDS = 30


class BuilderConsumer(AsyncJsonWebsocketConsumer):
    """One connected build worker (docs/BUILDS.md, "Websocket protocol")."""

    async def connect(self):
        self.worker: BuildWorker | None = None
        # Jobs sent and not yet ended: build id -> attempt. Builds told to stop wait in
        # ``stopping`` until the worker shows it let go (a result, or a heartbeat without it);
        # until then it gets no new job, so it never runs more than its capacity.
        self.jobs: dict[str, int] = {}
        self.stopping: set[str] = set()
        await wakeup.ensure_listener()
        await self.accept()
        self._register_timer = asyncio.get_running_loop().call_later(
            REGISTER_TIMEOUT_SECONDS, lambda: asyncio.ensure_future(self._register_timeout())
        )

    async def _register_timeout(self):
        if self.worker is None:
            await self._refuse("no register message")

    async def disconnect(self, code):
        self._register_timer.cancel()
        if self.worker is None:
            return
        await self.channel_layer.group_discard(wakeup.worker_group(self.worker.uuid), self.channel_name)
        await self.channel_layer.group_discard(wakeup.BUILDERS_GROUP, self.channel_name)
        await database_sync_to_async(manager.worker_disconnected)(worker_id=self.worker.pk)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        try:
            content = await self.decode_json(text_data) if text_data is not None else None
        except ValueError:
            content = None
        if not isinstance(content, dict):
            if self.worker is None:
                await self._refuse("expected a JSON object with a type")
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type")
        if self.worker is None:
            if kind != "register":
                await self._refuse("register first")
                return
            await self._register(content)
            return
        handler = {
            "heartbeat": self._heartbeat,
            "phase": self._phase,
            "log": self._log,
            "result": self._result,
        }.get(kind)
        if handler is None:
            logger.warning("worker %s sent an unknown message type %r", self.worker.uuid, kind)
            return
        await handler(content)

    async def _refuse(self, reason: str):
        await self.send_json({"type": "refused", "reason": reason})
        await self.close(code=CLOSE_REFUSED)

    async def _register(self, content):
        client = self.scope.get("client") or (None, None)
        try:
            self.worker = await database_sync_to_async(manager.worker_register)(
                secret=content.get("secret"),
                host=content.get("host", ""),
                version=content.get("version", ""),
                capacity=content.get("capacity", 1),
                channel_name=self.channel_name,
                remote_addr=client[0],
            )
        except manager.WorkerRefused as refused:
            await self._refuse(str(refused))
            return
        self._register_timer.cancel()
        await self.channel_layer.group_add(wakeup.worker_group(self.worker.uuid), self.channel_name)
        await self.channel_layer.group_add(wakeup.BUILDERS_GROUP, self.channel_name)
        await self.send_json(
            {
                "type": "registered",
                "worker_id": str(self.worker.uuid),
                "heartbeat_seconds": settings.BUILD_HEARTBEAT_SECONDS,
            }
        )
        # A new worker takes whatever is waiting now, without a trip through the task queue.
        await self._dispatch()

    async def _heartbeat(self, content):
        build_id = content.get("build_id")
        await database_sync_to_async(manager.worker_heartbeat)(worker_id=self.worker.pk, build_id=build_id)
        held = {str(b) for b in content.get("build_ids") or [] if b} | ({str(build_id)} if build_id else set())
        if self.stopping - held:
            # The worker let go of the builds it was told to stop: it is free for more.
            self.stopping &= held
            await database_sync_to_async(manager.worker_refresh)(worker_id=self.worker.pk)
            await self._dispatch()
            return
        # Also the fallback for a wake-up that got lost: at most one heartbeat late.
        await self._check()

    async def _phase(self, content):
        build_id, phase = str(content.get("build_id")), content.get("phase")
        accepted, reason = await database_sync_to_async(manager.phase_report)(
            worker_id=self.worker.pk,
            build_id=build_id,
            attempt=content.get("attempt"),
            phase=phase,
            status=content.get("status"),
        )
        await self.send_json(
            {"type": "phase_ack", "build_id": build_id, "phase": phase, "accepted": accepted, "reason": reason}
        )
        if not accepted:
            await self._check()

    async def _log(self, content):
        await database_sync_to_async(manager.log_append)(
            worker_id=self.worker.pk,
            build_id=content.get("build_id"),
            attempt=content.get("attempt"),
            entries=content.get("entries"),
        )

    async def _result(self, content):
        build_id = str(content.get("build_id"))
        digests = content.get("manifest_digests")
        accepted, reason = await database_sync_to_async(manager.result_report)(
            worker_id=self.worker.pk,
            build_id=build_id,
            attempt=content.get("attempt"),
            ok=content.get("ok") is True,
            image_id=content.get("image_id") or "",
            manifest_digests=digests if isinstance(digests, list) else [],
            error_kind=content.get("error_kind") or "",
            message=content.get("message") or "",
        )
        self.jobs.pop(build_id, None)
        self.stopping.discard(build_id)
        await self.send_json({"type": "result_ack", "build_id": build_id, "accepted": accepted, "reason": reason})
        await self._dispatch()

    async def builder_wake(self, event):
        """builds.wakeup: a job was assigned to this worker, or one of its builds must stop."""
        if self.worker is not None:
            await self._check()

    async def _dispatch(self):
        await database_sync_to_async(manager.dispatch_pending)()
        await self._check()

    async def _check(self):
        """Tell the worker to stop builds it must drop, then send the jobs assigned to it."""
        for build_id, attempt in list(self.jobs.items()):
            reason = await database_sync_to_async(manager.job_stop_reason)(
                worker_id=self.worker.pk, build_id=build_id, attempt=attempt
            )
            if reason:
                del self.jobs[build_id]
                self.stopping.add(build_id)
                await self.send_json({"type": "cancel", "build_id": build_id, "attempt": attempt, "reason": reason})
        if self.stopping:
            return
        while len(self.jobs) < self.worker.capacity:
            job = await database_sync_to_async(manager.job_for_worker)(worker=self.worker)
            if job is None:
                return
            self.jobs[job["build_id"]] = job["attempt"]
            await self.send_json(job)


class BuildLogConsumer(AsyncJsonWebsocketConsumer):
    """A browser watching one build: its log from ``?start=N``, then live entries and phases."""

    async def connect(self):
        self.build_uuid = self.scope["url_route"]["kwargs"]["build_uuid"]
        user = self.scope.get("user")
        await self.accept()
        build = await database_sync_to_async(_viewable_build)(user, self.build_uuid)
        if build is None:
            anonymous = user is None or not user.is_authenticated
            await self.close(code=CLOSE_UNAUTHENTICATED if anonymous else CLOSE_NOT_FOUND)
            return
        query = parse_qs((self.scope.get("query_string") or b"").decode("latin1"))
        try:
            self.next = max(0, int(query.get("start", ["0"])[0]))
        except ValueError:
            self.next = 0
        self.phase = None
        await wakeup.ensure_listener()
        # Joined before the first read: a change made meanwhile is read twice, never missed.
        self.group = wakeup.build_group(build.uuid)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._send_news()

    async def disconnect(self, code):
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        pass  # nothing to say to the server: the view only listens

    async def build_changed(self, event):
        await self._send_news()

    async def _send_news(self):
        news = await database_sync_to_async(_build_news)(self.build_uuid, self.next)
        if news is None:
            return
        phase, status, entries, total = news
        if entries:
            await self.send_json({"type": "logs", "start": self.next, "total": total, "entries": entries})
            self.next += len(entries)
        if phase != self.phase:
            self.phase = phase
            await self.send_json({"type": "phase", "phase": phase, "status": status})


def _viewable_build(user, build_uuid) -> Build | None:
    """The build if ``user`` may read its repository (the REST API's rule), else None."""
    build = selectors.build_by_uuid_any(build_uuid=build_uuid)
    if build is None:
        return None
    # role_on takes a request; a websocket has a session user and no API token.
    caller = SimpleNamespace(user=user, auth=None)
    if role_on(caller, build.repository) is None:
        return None
    return build


def _build_news(build_uuid, start: int):
    build = selectors.build_by_uuid_any(build_uuid=build_uuid)
    if build is None:
        return None
    entries, total = selectors.build_logs(build=build, start=start)
    return build.phase, build.status, entries, total

"""Running a job's commands (git, buildah, docker) so that a cancel can stop them for sure.

Each command starts in a session of its own, so its whole process group (buildah and the RUN
step's processes under it) is signalled together; output is read line by line while the event
loop keeps serving the websocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable

MAX_LINE = 16 * 1024
TERM_GRACE_SECONDS = 5
KEEP_LINES = 50
IDLE_FLUSH_SECONDS = 0.25


class Processes:
    """The commands of one job, one at a time; ``kill()`` ends the current one and refuses more."""

    def __init__(self):
        self.current: asyncio.subprocess.Process | None = None
        self.killed = False

    async def run(
        self,
        argv: list[str],
        *,
        env: dict | None = None,
        cwd: str | None = None,
        on_line: Callable[[str], Awaitable[None]] | None = None,
        on_idle: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[int, list[str]]:
        """Run ``argv`` with stdout and stderr merged; return its exit status and last lines.

        ``on_line`` gets each line (newline kept) as it comes; ``on_idle`` is called when the
        command has been quiet for a moment (to flush batched log lines).
        """
        if self.killed:
            return -signal.SIGKILL, []
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            limit=MAX_LINE * 4,
        )
        self.current = process
        last: list[str] = []
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(process.stdout.readline(), IDLE_FLUSH_SECONDS)
                except TimeoutError:
                    if on_idle is not None:
                        await on_idle()
                    continue
                except ValueError:  # a line longer than the stream limit: take what is there
                    raw = await process.stdout.read(MAX_LINE)
                if not raw:
                    break
                line = raw[:MAX_LINE].decode("utf-8", "replace")
                if not line.endswith("\n"):
                    line += "\n"
                stripped = line.strip()
                if stripped:
                    last.append(stripped)
                    del last[:-KEEP_LINES]
                if on_line is not None:
                    await on_line(line)
            return await process.wait(), last
        finally:
            if process.returncode is None:
                # Cancelled while reading, or the reader failed: the command must not outlive us.
                await self._end(process)
            self.current = None

    async def kill(self) -> None:
        """End the running command and everything it started; later ``run`` calls do nothing."""
        self.killed = True
        process = self.current
        if process is not None and process.returncode is None:
            await self._end(process)

    @staticmethod
    async def _end(process: asyncio.subprocess.Process) -> None:
        # SIGTERM first so buildah can remove its working container, then SIGKILL what is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), TERM_GRACE_SECONDS)
        except TimeoutError:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), TERM_GRACE_SECONDS)

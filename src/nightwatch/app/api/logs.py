"""/api/v1/tasks/{id}/logs: a task's output, read or followed (`follow=true` streams it as it comes).

Readable by whoever may read the task (`AccessPolicy.check_readable`, as `GET /tasks/{id}`). A
follow is a chunked `text/plain` response that ends when the task does, at the byte cap or the idle
timeout (`logs:` settings). Its blocking iterator runs on a thread of its own, one per stream and at
most `logs.max_streams` of them (`ReadTaskLogs` refuses the next with a 503), not on the shared
thread pool the other routes run in: a few dozen waiting streams must not starve the API.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from nightwatch.app.api.deps import UNAUTHORIZED, Reader, State
from nightwatch.app.api.schemas import ErrorOut
from nightwatch.app.api.tasks import TaskIdPath
from nightwatch.app.usecases.logs import as_utf8, decode
from nightwatch.domain.errors import TaskNotFound
from nightwatch.domain.model import TaskId

router = APIRouter(prefix="/api/v1", responses=UNAUTHORIZED)

TEXT = "text/plain; charset=utf-8"
_QUEUED_CHUNKS = 8
"""Chunks read ahead of a slow client; then the reading thread waits (a bounded buffer per stream)."""
_PUT_WAIT_SECONDS = 1.0


@router.get(
    "/tasks/{task_id}/logs",
    response_class=Response,
    responses={
        200: {"content": {TEXT: {}}, "description": "The output (invalid UTF-8 as U+FFFD)"},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut, "description": "No such attempt"},
        503: {"model": ErrorOut, "description": "This replica serves its maximum of log streams"},
    },
)
def task_logs(
    task_id: TaskIdPath,
    who: Reader,
    state: State,
    follow: Annotated[bool, Query(description="Keep sending output until the task ends")] = False,
    tail: Annotated[int | None, Query(ge=0, le=1_000_000, description="Only the last N lines")] = None,
    attempt: Annotated[int | None, Query(ge=1, le=1_000_000, description="Which attempt (default: current)")] = None,
    offset: Annotated[
        int, Query(ge=0, le=1 << 40, description="With follow and no tail: skip this many bytes (a reconnect)")
    ] = 0,
) -> Response:
    """The output of one attempt of a task: live from its Job, or the tail kept once it ended."""
    logs = state.backend.logs
    if logs is None:
        raise TaskNotFound("this server keeps no task output")
    task = state.backend.queries.get(TaskId(task_id))
    state.policy.check_readable(who, task)
    if not follow:
        return Response(decode(logs.read(task, tail=tail, attempt=attempt)).encode("utf-8"), media_type=TEXT)
    gone = threading.Event()
    chunks = logs.follow(task.id, tail=tail, attempt=attempt, offset=offset, stopped=gone.is_set)
    return StreamingResponse(_on_own_thread(chunks, gone), media_type=TEXT, headers={"X-Accel-Buffering": "no"})


async def _on_own_thread(chunks: Iterator[bytes], gone: threading.Event) -> AsyncIterator[bytes]:
    """`chunks` pumped by a dedicated thread into a bounded queue; `gone` is set when the client
    goes (or the server stops), which ends the stream at its next chunk or poll."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUED_CHUNKS)

    def put(item: bytes | None) -> bool:
        while not gone.is_set():
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            try:
                future.result(_PUT_WAIT_SECONDS)
                return True
            except TimeoutError:
                future.cancel()
        return False

    def pump() -> None:
        text = as_utf8(chunks)
        try:
            for chunk in text:
                if not put(chunk):
                    return
        finally:
            text.close()
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # gives the stream slot back (idempotent)
            if not gone.is_set():
                loop.call_soon_threadsafe(_end, queue)

    threading.Thread(target=pump, name="log-stream", daemon=True).start()
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
    finally:
        gone.set()


def _end(queue: asyncio.Queue[bytes | None]) -> None:
    try:
        queue.put_nowait(None)
    except asyncio.QueueFull:
        # The client is behind by a full queue; it reads on and gets the end marker from a retry.
        asyncio.get_running_loop().call_later(0.05, _end, queue)

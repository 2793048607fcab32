"""Server-sent events of a page's live state: the state is read from the store every few
seconds and pushed only when it changed (a comment now and then keeps proxies from closing a
quiet stream); the stream ends after a while and EventSource reconnects by itself. A stream
may hold a slot under the open-stream caps (:mod:`api.stream_caps`): refreshed on every poll,
released when the stream ends however it ends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

#: Poll the store this often, comment this often when nothing changed, end after this long.
POLL_S = 2.0
KEEP_ALIVE_S = 15.0
STREAM_MAX_S = 600.0

State = dict[str, Any]


class Held(Protocol):
    """What a stream holds while it is open (:class:`api.stream_caps.Slot`)."""

    def heartbeat(self) -> None: ...

    def release(self) -> None: ...


def sse_event(data: State, name: str = "update") -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def change_stream(
    request: Request,
    first: State,
    snapshot: Callable[[], State | None],
    *,
    poll_s: float = POLL_S,
    max_s: float = STREAM_MAX_S,
    final: Callable[[State], bool] = lambda _state: False,
    hold: Held | None = None,
    event: str = "update",
) -> StreamingResponse:
    """Stream ``first``, then each new ``snapshot()`` (run in a worker thread) that differs
    from the last one sent, until ``final`` says the state will not change again, the
    snapshot is gone (None), the client leaves or ``max_s`` has passed. ``hold``: its
    heartbeat on every poll, its release at the end (also when the client left mid-poll).
    ``event``: the events' name, what the page listens for."""

    async def stream() -> AsyncIterator[str]:
        try:
            last = first
            yield "retry: 5000\n" + sse_event(first, event)
            started = quiet_since = time.monotonic()
            while not final(last) and time.monotonic() - started < max_s:
                await asyncio.sleep(poll_s)
                if await request.is_disconnected():
                    return
                if hold is not None:
                    await run_in_threadpool(hold.heartbeat)
                now = await run_in_threadpool(snapshot)
                if now is None:
                    return
                if now != last:
                    last = now
                    quiet_since = time.monotonic()
                    yield sse_event(now, event)
                elif time.monotonic() - quiet_since >= KEEP_ALIVE_S:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
        finally:
            if hold is not None:
                # Shielded: a cancelled stream (the client left) still gives its slot back.
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(hold.release)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

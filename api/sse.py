"""Server-sent events of a page's live state: the state is read from the store every few
seconds and pushed only when it changed (a comment now and then keeps proxies from closing a
quiet stream); the stream ends after a while and EventSource reconnects by itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

#: Poll the store this often, comment this often when nothing changed, end after this long.
POLL_S = 2.0
KEEP_ALIVE_S = 15.0
STREAM_MAX_S = 600.0

State = dict[str, Any]


def sse_event(data: State) -> str:
    return f"event: update\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def change_stream(
    request: Request,
    first: State,
    snapshot: Callable[[], State | None],
    *,
    poll_s: float = POLL_S,
    max_s: float = STREAM_MAX_S,
    final: Callable[[State], bool] = lambda _state: False,
) -> StreamingResponse:
    """Stream ``first``, then each new ``snapshot()`` (run in a worker thread) that differs
    from the last one sent, until ``final`` says the state will not change again, the
    snapshot is gone (None), the client leaves or ``max_s`` has passed."""

    async def stream() -> AsyncIterator[str]:
        last = first
        yield "retry: 5000\n" + sse_event(first)
        started = quiet_since = time.monotonic()
        while not final(last) and time.monotonic() - started < max_s:
            await asyncio.sleep(poll_s)
            if await request.is_disconnected():
                return
            now = await run_in_threadpool(snapshot)
            if now is None:
                return
            if now != last:
                last = now
                quiet_since = time.monotonic()
                yield sse_event(now)
            elif time.monotonic() - quiet_since >= KEEP_ALIVE_S:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

"""An ASGI ``send`` that remembers the status of the response it carries.

The access log, the request metrics and the console's form tokens each need to know,
once a request is over, how it was answered; each wraps the ``send`` it passes on.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Message, Send


class WatchedSend:
    """Passes each message on to ``send``; ``status`` is the response's (500 until a
    response starts: an exception escaped before any answer), ``started`` whether one
    has. ``on_start`` may change the response's first message (its headers) first."""

    def __init__(self, send: Send, on_start: Callable[[Message], None] | None = None) -> None:
        self._send = send
        self._on_start = on_start
        self.status = 500
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
            if self._on_start is not None:
                self._on_start(message)
        await self._send(message)

"""Reading a Server-Sent Events response (aiohttp client) one message at a time, for tests."""

import asyncio
import json
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Message:
    """One blank-line-terminated block: an event, a `retry:` hint, or a comment (heartbeat)."""
    event: str | None = None
    data: str | None = None
    id: int | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self):
        return json.loads(self.data)


class EventReader:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 5) -> Message | None:
        """The next message, or None at the end of the stream."""
        message, seen = Message(), False
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    return message if seen else None
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if seen:
                        return message
                    continue
                seen = True
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    message.comments.append(value)
                elif name == "event":
                    message.event = value
                elif name == "data":
                    message.data = value if message.data is None else f"{message.data}\n{value}"
                elif name == "id":
                    message.id = int(value)
                elif name == "retry":
                    message.retry = int(value)

    async def next_event(self, timeout: float = 5) -> Message:
        """The next message that is an event (heartbeats and hints skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                assert message is not None, "the stream ended"
                if message.event is not None:
                    return message

    async def until_ready(self, timeout: float = 5) -> tuple[list[Message], dict]:
        """The events before `ready`, and ready's data."""
        before = []
        while (message := await self.next_event(timeout)).event != "ready":
            before.append(message)
        return before, message.json()

"""The streaming relay and its disconnect watcher (``routing.asgi_endpoint``), driven through the
ASGI interface itself: a client that leaves stops the relay and lets it clean up, and any other
cancellation (a server shutting down) still reaches the request's task."""

import asyncio

import pytest

from routing.asgi_endpoint import _relay_watching
from routing.replies import LastChunk, Reply


class Client:
    """The ASGI side of one streaming exchange: what was sent, and a disconnect on demand."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.gone = asyncio.Event()
        self.got_message = asyncio.Event()

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        self.got_message.set()

    async def wait_for_bodies(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` body chunks have arrived; the timeout bounds the wait, it is no
        assertion about speed."""
        async with asyncio.timeout(timeout):
            while len(self.bodies()) < count:
                self.got_message.clear()
                await self.got_message.wait()

    async def receive(self) -> dict:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


def stream_of(chunks: int, closed: list[str], pause: float = 0.01, end: bool = True) -> Reply:
    async def relay():
        try:
            for i in range(chunks):
                yield b"data: %d\n\n" % i
                await asyncio.sleep(pause)
            if end:
                yield LastChunk(b"data: [DONE]\n\n")
        finally:
            closed.append("closed")  # the relay's own clean-up (settlement) runs here

    return Reply(200, {"Content-Type": "text/event-stream"}, stream=relay())


def test_a_client_that_leaves_mid_stream_stops_the_relay_and_lets_it_clean_up():
    closed: list[str] = []
    client = Client()

    async def exchange():
        reply = stream_of(1000, closed)
        relay = asyncio.create_task(_relay_watching(reply, client.send, client.receive))
        await client.wait_for_bodies(3)
        client.gone.set()
        await relay
        return relay

    relay = asyncio.run(exchange())
    assert not relay.cancelled() and relay.cancelling() == 0
    assert closed == ["closed"]
    assert 3 <= len(client.bodies()) < 1000
    assert client.sent[0]["type"] == "http.response.start"


def test_the_first_chunk_goes_out_in_the_request_task_before_it_yields():
    """No new task stands between the answer and its first chunk."""
    client = Client()

    async def exchange():
        relay = asyncio.create_task(
            _relay_watching(stream_of(2, [], pause=0.05), client.send, client.receive)
        )
        await asyncio.sleep(0)  # one turn: the relay's task runs until its first real wait
        first = list(client.bodies())
        await relay
        return first

    assert asyncio.run(exchange()) == [b"data: 0\n\n"]


def test_a_client_that_leaves_after_the_end_changes_nothing():
    closed: list[str] = []
    client = Client()

    async def exchange() -> tuple[int, bool]:
        await _relay_watching(stream_of(2, closed, pause=0), client.send, client.receive)
        sent = len(client.sent)
        client.gone.set()
        # The disconnect watcher is the only other task: once it has ended, nothing more can
        # react to the client leaving.
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others, timeout=10)
        return len(client.sent) - sent, all(t.done() for t in others)

    sent_after_leaving, watcher_ended = asyncio.run(exchange())
    assert sent_after_leaving == 0 and watcher_ended
    assert closed == ["closed"]
    assert client.bodies()[-1] == b"data: [DONE]\n\n"
    assert client.sent[-1]["more_body"] is False


def test_a_cancellation_that_is_not_the_client_leaving_goes_on():
    closed: list[str] = []
    client = Client()

    async def exchange():
        relay = asyncio.create_task(
            _relay_watching(stream_of(1000, closed), client.send, client.receive)
        )
        await client.wait_for_bodies(2)
        relay.cancel()  # e.g. the server shutting down
        with pytest.raises(asyncio.CancelledError):
            await relay
        return relay

    assert asyncio.run(exchange()).cancelled()
    assert closed == ["closed"]

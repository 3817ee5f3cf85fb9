"""``rtenhance serve``: many live streams over WebSocket, enhanced together by one batched step per hop.

The event loop accepts clients (``websockets``), decodes their audio into per-client queues
(``Session``) and sends their output. One tick task wakes every hop (16 ms): it lets joining clients in
and leaving ones out of the ``MultiStreamEnhancer``, takes one hop from every client that has one waiting,
and steps them all as one batch on a worker thread (the loop keeps serving sockets meanwhile). A client
with no whole hop waiting at a tick is skipped (counted) and not waited for; one with more than
``max_backlog_hops`` waiting gets the excess back unprocessed (passthrough, counted), as the daemon does
when it is overloaded. A client that breaks the protocol, or leaves more than ``max_unsent_s`` of output
unread, is closed with a clear reason and never holds up the others. Totals (streams, step time p50/p99,
skipped and passthrough hops) are logged every ``stats_interval_s``, and each stream's counts when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from rtenhance.model.gtcrn import GTCRN
from rtenhance.multistream import MultiStreamEnhancer
from rtenhance.serve.config import ServeConfig
from rtenhance.serve.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN_LATER,
    SAMPLE_RATE,
    ProtocolError,
    decode_audio,
    encode_audio,
    parse_hello,
    ready_message,
)
from rtenhance.serve.session import Session
from rtenhance.serve.stats import ServeStats

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 20  # larger client messages are refused by websockets (close code 1009)
CLOSE_TIMEOUT_S = 2.0  # a closing handshake that takes longer ends with the TCP connection dropped


class StreamServer:
    """The server (see the module docstring). Use ``async with StreamServer(...) as server`` or ``start``.

    Args:
        model: the network.
        config: its settings.

    Raises:
        NativeUnavailable: the batched native step cannot be built or loaded.
    """

    def __init__(self, model: GTCRN, config: ServeConfig) -> None:
        self.config = config
        self.enhancer = MultiStreamEnhancer(model)
        self.hop_samples = self.enhancer.hop_samples
        self.hop_s = self.hop_samples / SAMPLE_RATE
        self.stats = ServeStats()
        self._sessions: dict[int, Session] = {}  # accepted clients, by session id
        self._connections: dict[int, ServerConnection] = {}  # their connections, by session id
        self._joining: list[Session] = []
        self._leaving: list[Session] = []
        self._next_id = 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtenhance-serve-step")
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def port(self) -> int:
        """The port listened on (useful with ``port=0``)."""
        assert self._server is not None, "not started"
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def session_count(self) -> int:
        """Clients accepted and not yet gone."""
        return len(self._sessions)

    async def start(self) -> None:
        """Listen, and start the tick and the stats tasks."""
        self._server = await serve(self._handle, self.config.host, self.config.port, max_size=MAX_MESSAGE_BYTES,
                                   close_timeout=CLOSE_TIMEOUT_S, compression=None)
        self._tasks = [asyncio.create_task(self._tick_loop()), asyncio.create_task(self._stats_loop())]
        log.info("serving on ws://%s:%d (max %d streams)", self.config.host, self.port, self.config.max_streams)

    async def stop(self) -> None:
        """Close every client (1001) and stop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close(close_connections=False)
            await asyncio.gather(*(self._close(s, CLOSE_GOING_AWAY, "server shutting down")
                                   for s in list(self._sessions.values())), return_exceptions=True)
            await self._server.wait_closed()
        self._worker.shutdown(wait=True)
        self.stats.log_totals(len(self._sessions))

    async def __aenter__(self) -> StreamServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _close(self, session: Session, code: int, reason: str) -> None:
        connection = self._connections.get(session.session_id)
        if connection is not None:
            await connection.close(code, reason)

    async def _handle(self, connection: ServerConnection) -> None:
        """One client's whole life: hello, then audio in; output goes out through its sender task."""
        try:
            first = await asyncio.wait_for(connection.recv(), self.config.hello_timeout_s)
            hello = parse_hello(first)
        except TimeoutError:
            await connection.close(CLOSE_POLICY, f"no hello within {self.config.hello_timeout_s:g} s")
            return
        except ProtocolError as exc:
            self.stats.refused += 1
            await connection.close(exc.code, exc.reason)
            return
        except ConnectionClosed:
            return
        if len(self._sessions) >= self.config.max_streams:
            self.stats.refused += 1
            await connection.close(CLOSE_TRY_AGAIN_LATER, f"server full: {self.config.max_streams} streams")
            return
        session = Session(self._next_id, hello, self.hop_samples, time.monotonic())
        self._next_id += 1
        self._sessions[session.session_id] = session
        self._connections[session.session_id] = connection
        self._joining.append(session)
        sender = asyncio.create_task(self._send_loop(session, connection))
        why = "client closed"
        try:
            await connection.send(ready_message(session.session_id, hello, self.hop_samples,
                                                self.enhancer.latency_samples))
            async for message in connection:
                session.push(decode_audio(message, hello))
        except ProtocolError as exc:
            why = exc.reason
            self.stats.protocol_errors += 1
            await connection.close(exc.code, exc.reason)
        except ConnectionClosed as exc:
            why = f"connection lost ({exc})"
            self.stats.abrupt += 1
        finally:
            sender.cancel()
            del self._sessions[session.session_id]
            del self._connections[session.session_id]
            self._leaving.append(session)
            if connection.close_reason and why == "client closed":
                why = f"closed: {connection.close_reason}"
            self.stats.log_session(session, why, time.monotonic())

    async def _send_loop(self, session: Session, connection: ServerConnection) -> None:
        """Sends the session's output in order (waits while the client's socket is full)."""
        try:
            while True:
                await session.wake.wait()
                session.wake.clear()
                while session.outbox:
                    await connection.send(session.outbox.popleft())
        except ConnectionClosed:
            return

    async def _tick_loop(self) -> None:
        """Every hop: membership changes, then one batched step of every client with a hop waiting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += self.hop_s
            wait = deadline - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                self.stats.late_ticks += 1
                if wait < -self.hop_s:
                    deadline = loop.time()  # far behind: start the schedule again from now
            await self._tick(loop)

    def _admit(self) -> None:
        for session in self._leaving:
            if session.stream_id is not None:
                self.enhancer.remove_stream(session.stream_id)
        for session in self._joining:
            if session.session_id in self._sessions:
                session.stream_id = self.enhancer.add_stream()
        self._joining, self._leaving = [], []

    def _evict_slow_readers(self) -> None:
        """Close every client whose sender could not hand the previous ticks' output to its socket."""
        unsent_limit = int(self.config.max_unsent_s / self.hop_s)
        for session in self._sessions.values():
            if len(session.outbox) > unsent_limit and not session.closing:
                session.closing = True
                self.stats.slow_readers += 1
                reason = f"slow reader: more than {self.config.max_unsent_s:g} s of output unread"
                asyncio.create_task(self._close(session, CLOSE_POLICY, reason))

    async def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._admit()
        self._evict_slow_readers()
        ready: list[Session] = []
        for session in self._sessions.values():
            if session.stream_id is None or session.closing:
                continue
            waiting = session.waiting_hops
            if waiting == 0:
                if session.started:
                    session.counts.skipped += 1
                    self.stats.skipped += 1
                continue
            for _ in range(waiting - self.config.max_backlog_hops):
                session.send(encode_audio(session.take_hop(), session.hello))
                session.counts.passthrough += 1
                self.stats.passthrough += 1
            ready.append(session)
        if not ready:
            return
        hops = np.stack([s.take_hop() for s in ready])
        ids = [s.stream_id for s in ready]
        started = time.perf_counter()
        enhanced = await loop.run_in_executor(self._worker, self.enhancer.process_hops, ids, hops)
        self.stats.add_step(time.perf_counter() - started, len(ready))
        for session, row in zip(ready, enhanced):
            if session.session_id in self._sessions:  # else gone while the step ran
                session.counts.enhanced += 1
                session.send(encode_audio(row, session.hello))

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            self.stats.log_totals(len(self._sessions))

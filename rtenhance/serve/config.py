"""Settings of ``rtenhance serve`` (importable without the ``websockets`` package)."""

from __future__ import annotations

from dataclasses import dataclass

from rtenhance.config import require


@dataclass(frozen=True)
class ServeConfig:
    """Settings of the stream server.

    Attributes:
        host: address to listen on.
        port: TCP port (0: any free port).
        max_streams: clients served at once; more are refused (close code 1013).
        max_backlog_hops: whole hops a client may have waiting after a tick; older ones pass through.
        max_unsent_s: seconds of output a client may leave unread before it is closed as a slow reader.
        hello_timeout_s: seconds a client has to send its hello.
        stats_interval_s: seconds between total-stats log lines.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    max_streams: int = 1024
    max_backlog_hops: int = 4
    max_unsent_s: float = 2.0
    hello_timeout_s: float = 5.0
    stats_interval_s: float = 10.0

    def __post_init__(self) -> None:
        require(0 <= self.port <= 65535, "serve.port", self.port, "0 to 65535")
        require(self.max_streams >= 1, "serve.max_streams", self.max_streams, "an integer >= 1")
        require(self.max_backlog_hops >= 1, "serve.max_backlog_hops", self.max_backlog_hops, "an integer >= 1")
        require(self.max_unsent_s > 0, "serve.max_unsent_s", self.max_unsent_s, "seconds > 0")
        require(self.hello_timeout_s > 0, "serve.hello_timeout_s", self.hello_timeout_s, "seconds > 0")
        require(self.stats_interval_s > 0, "serve.stats_interval_s", self.stats_interval_s, "seconds > 0")

"""Prometheus metrics: requests, bytes and latency per route (a pure ASGI middleware, so
streamed bodies pass untouched), and replica states read from the catalog at each scrape."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

Scope = dict[str, Any]
App = Callable[..., Any]


class Metrics:
    def __init__(self, replica_counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cdir_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.sent = Counter("cdir_http_sent_bytes", "Response body bytes", registry=self.registry)
        self.received = Counter(
            "cdir_http_received_bytes", "Request body bytes", registry=self.registry
        )
        self.seconds = Histogram(
            "cdir_http_request_seconds",
            "Time to the end of the response",
            ["route"],
            registry=self.registry,
        )
        self.provider_seconds = Gauge(
            "cdir_provider_check_seconds",
            "Round trip of the last provider test",
            ["provider"],
            registry=self.registry,
        )
        self.registry.register(_Replicas(replica_counts))


class _Replicas(Collector):
    def __init__(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(
            "cdir_replicas", "Replicas by provider and state", labels=["provider", "state"]
        )
        for (provider, state), n in sorted(self._counts().items()):
            g.add_metric([provider, state], n)
        yield g


class MetricsMiddleware:
    def __init__(self, app: App, metrics: Metrics) -> None:
        self.app, self.m = app, metrics

    async def __call__(self, scope: Scope, receive: App, send: App) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def counting_receive() -> Any:
            msg = await receive()
            self.m.received.inc(len(msg.get("body", b"")))
            return msg

        async def counting_send(msg: Any) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            elif msg["type"] == "http.response.body":
                self.m.sent.inc(len(msg.get("body", b"")))
            await send(msg)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.m.requests.labels(scope["method"], route, str(status[0])).inc()
            self.m.seconds.labels(route).observe(time.perf_counter() - start)

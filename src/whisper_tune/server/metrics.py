"""Prometheus metrics of one app (its own registry, so several apps can share a process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "whisper_tune"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Requests by route and status, their latency, audio transcribed, queue and models."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            f"{PREFIX}_audio_seconds",
            "Seconds of audio transcribed, by model",
            ["model"],
            registry=self.registry,
        )
        self.model_events = Counter(
            f"{PREFIX}_model_events",
            "Models loaded and unloaded, by event (load, unload) and model",
            ["event", "model"],
            registry=self.registry,
        )

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        """A gauge read when scraped (queue depth, busy workers, models loaded)."""
        Gauge(f"{PREFIX}_{name}", help, registry=self.registry).set_function(read)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def model_event(self, event: str, model: str) -> None:
        self.model_events.labels(event, model).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

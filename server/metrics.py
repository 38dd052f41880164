"""Prometheus metrics of one server, in their own registry (several apps in one test process stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from vision.labels import LABELS

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_LOCATION_LABELS = 64
"""Distinct `location` values of maskcam_passages_total: locations come from clients (the offer's JSON),
so they are capped to keep the metric's series bounded; further ones are counted as OTHER_LOCATION."""
OTHER_LOCATION = "other"
_ANALYSIS_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.active_sessions = Gauge(
            "maskcam_active_sessions", "WebRTC sessions now open", registry=self.registry
        )
        self.frames_received = Counter(
            "maskcam_frames_received", "Video frames received from cameras", registry=self.registry
        )
        self.frames_sent = Counter(
            "maskcam_frames_sent", "Annotated video frames sent back", registry=self.registry
        )
        self.frames_analysed = Counter(
            "maskcam_frames_analysed", "Frames run through detector and classifier", registry=self.registry
        )
        self.frames_dropped = Counter(
            "maskcam_frames_dropped",
            "Frames replaced by a newer one before analysis (stage=analysis) or sending (stage=output)",
            ["stage"],
            registry=self.registry,
        )
        self.analysis_seconds = Histogram(
            "maskcam_analysis_seconds",
            "Detector + classifier time per analysed frame",
            buckets=_ANALYSIS_BUCKETS,
            registry=self.registry,
        )
        self.faces = Counter(
            "maskcam_faces", "Faces seen in analysed frames", ["label"], registry=self.registry
        )
        self.offers = Counter("maskcam_offers", "Offers received", registry=self.registry)
        self.offers_rejected = Counter(
            "maskcam_offers_rejected", "Offers refused", ["reason"], registry=self.registry
        )
        self.sessions_closed = Counter(
            "maskcam_sessions_closed", "Sessions ended", ["cause"], registry=self.registry
        )
        self.passages = Counter(
            "maskcam_passages",
            "People who passed a camera (passages), by the camera's location and the passage's label",
            ["location", "label"],
            registry=self.registry,
        )
        self.passages_dropped = Counter(
            "maskcam_passages_dropped",
            "Passages not stored: more than --history-queue waited for the database, the database "
            "refused the record, or its schema is newer than this server's",
            registry=self.registry,
        )
        self.passages_waiting = Gauge(
            "maskcam_passages_waiting",
            "Passages waiting for the history database (in the spool)",
            registry=self.registry,
        )
        self.events_delivered = Counter(
            "maskcam_events_delivered",
            "Passages a sink acknowledged (the broker's PUBACK, a webhook's 2xx)",
            ["sink"],
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "maskcam_events_dropped",
            "Passages dropped unsent: more than --events-queue waited for the sink",
            ["sink"],
            registry=self.registry,
        )
        self.events_queued = Gauge(
            "maskcam_events_queued",
            "Passages waiting for the sink (in the spool)",
            ["sink"],
            registry=self.registry,
        )
        self.events_connected = Gauge(
            "maskcam_events_connected",
            "1 while the sink is connected (MQTT) or its last delivery succeeded (webhook), else 0",
            ["sink"],
            registry=self.registry,
        )
        self._locations: set[str] = set()
        for label in LABELS:
            self.faces.labels(label=label)
        for stage in ("analysis", "output"):
            self.frames_dropped.labels(stage=stage)

    def count_passage(self, location: str, label: str) -> None:
        """One finished passage in maskcam_passages_total, under a capped location label."""
        self.passages.labels(location=self.location_label(location), label=label).inc()

    def location_label(self, location: str) -> str:
        """`location` for the first MAX_LOCATION_LABELS distinct ones seen, OTHER_LOCATION after that."""
        if location in self._locations:
            return location
        if len(self._locations) < MAX_LOCATION_LABELS:
            self._locations.add(location)
            return location
        return OTHER_LOCATION

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""What the server sends on a camera's data channel (the wire format; docs/API.md is the contract)."""

from __future__ import annotations

import time
from typing import Any

from server.analysis.analyser import AnalysisResult
from vision.labels import LABELS

DATA_CHANNEL_LABEL = "detections"


def detection_message(session_id: str, result: AnalysisResult) -> dict[str, Any]:
    """The data-channel message for one analysed frame (see docs/API.md)."""
    counts = dict.fromkeys(LABELS, 0)
    for detection in result.detections:
        counts[detection.label] = counts.get(detection.label, 0) + 1
    now_wall = time.time()
    age_s = time.monotonic() - result.received_at
    return {
        "type": "detections",
        "session": session_id,
        "frame": result.number,
        "width": result.width,
        "height": result.height,
        "faces": [detection.to_json() for detection in result.detections],
        "counts": counts,
        "inference_ms": round(result.inference_ms, 1),
        "queue_ms": round(result.queue_ms, 1),
        "received_at": round((now_wall - age_s) * 1000.0, 1),
        "sent_at": round(now_wall * 1000.0, 1),
        "analysed": result.analysed,
        "dropped": result.dropped,
    }


def pong_message(request: dict[str, Any]) -> dict[str, Any]:
    """The answer to the page's `{"type": "ping", "id", "t"}` (clock offset and round trip)."""
    return {
        "type": "pong",
        "id": request.get("id"),
        "t": request.get("t"),
        "server_time": round(time.time() * 1000.0, 1),
    }

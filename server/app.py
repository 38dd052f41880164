"""The aiohttp application: the page, signalling (`POST /offer`), settings, health and metrics.

Bad requests get a 4xx JSON error `{"error", "reason"}`, never a 500; the full contract is docs/API.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from server.analysis.analyser import AnalyserSource
from server.analysis.process import AnalysisProcess
from server.analysis.worker import AnalysisWorker
from server.errors import error_response
from server.events.service import EVENTS, setup_events
from server.history.api import add_history_routes
from server.history.service import HISTORY, setup_history
from server.location import UNNAMED, parse_location
from server.metrics import METRICS_CONTENT_TYPE, ServerMetrics
from server.pages import notice_response
from server.rtc import tuning as rtc_tuning
from server.rtc.messages import DATA_CHANNEL_LABEL
from server.rtc.registry import CapacityError, SessionRegistry
from server.rtc.session import OfferError, RecorderFactory
from server.rtc.track import STALE_AFTER_S
from server.security import CREDENTIAL, OPERATOR_ONLY, wants_html
from server.settings import OVERLAY_MODES, ServerConfig
from vision.labels import LABEL_COLOURS_BGR, LABEL_VERDICTS, LABELS, SHORT_TEXT, is_compliant

logger = logging.getLogger(__name__)

AnalyserSourceFactory = Callable[[ServerConfig], AnalyserSource]
"""Builds the server's analyser source from the settings: `AnalysisProcess`, or a stand-in in tests."""
CAMERA_FRAME_RATE = 30
"""What the page asks the camera for; Chrome sends this much once the answer raises its bitrate floor."""


def default_recorder_factory(config: ServerConfig) -> RecorderFactory | None:
    """With `--record DIR`, a SessionRecorder per session; otherwise nothing is ever written."""
    if config.record is None:
        return None
    from server.rtc.recorder import SessionRecorder

    directory = config.record

    def make(session_id: str) -> SessionRecorder:
        return SessionRecorder(directory, session_id)

    return make


@dataclass
class ServerState:
    config: ServerConfig
    metrics: ServerMetrics
    registry: SessionRegistry
    source_factory: AnalyserSourceFactory
    recorder_factory: RecorderFactory | None
    worker: AnalysisWorker | None = None
    analysis_processes: list[AnalysisProcess] = field(default_factory=list)


STATE = web.AppKey("maskcam_state", ServerState)


def _hex_colour(bgr: tuple[int, int, int]) -> str:
    blue, green, red = bgr
    return f"#{red:02x}{green:02x}{blue:02x}"


def create_app(
    config: ServerConfig,
    source_factory: AnalyserSourceFactory = AnalysisProcess,
    recorder_factory: RecorderFactory | None = None,
) -> web.Application:
    """The app; `source_factory` is called at startup in a thread (`/healthz` is 503 until it returns).

    `source_factory` gives the analyser source: by default it starts the analysis process, which loads
    the models (`server.analysis.models.load_models`) in the child; run_server.py starts that process before
    serving, so that a missing model file is an exit code, and hands it in; tests pass stand-ins.
    `recorder_factory` defaults to a SessionRecorder per session when `config.record` is set.
    Installs the server's aiortc tuning (`server.rtc.tuning`) for the peer connections of this process.
    """
    rtc_tuning.install()
    metrics = ServerMetrics()
    middlewares = [*_security_middlewares(config, metrics), _not_found_middleware]
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=middlewares)
    registry = SessionRegistry(config.session_limit, metrics)
    app[STATE] = ServerState(
        config=config,
        metrics=metrics,
        registry=registry,
        source_factory=source_factory,
        recorder_factory=recorder_factory or default_recorder_factory(config),
    )
    setup_history(app, config, metrics)
    add_history_routes(app)
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/kiosk", _page("kiosk.html"))
    app.router.add_get("/dashboard", _page("dashboard.html"))
    app.router.add_post("/offer", _offer)
    app.router.add_get("/config", _config)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    if config.static_dir.is_dir():
        app.router.add_static("/static/", config.static_dir, follow_symlinks=False)
    app.on_startup.append(_start_worker)
    app.on_shutdown.append(_close_sessions)
    app.on_cleanup.append(_stop_worker)
    setup_events(app, config, metrics)  # after the sessions: at shutdown it stops once they have closed
    return app


def _security_middlewares(config: ServerConfig, metrics: ServerMetrics) -> list[Any]:
    from server.security import security_middlewares

    def count_rejection(reason: str) -> None:
        metrics.offers_rejected.labels(reason=reason).inc()

    return security_middlewares(
        config.token, config.offers_per_minute, admin_token=config.admin_token, on_reject=count_rejection
    )


@web.middleware
async def _not_found_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """A wrong path: a page in the reader's language for a browser, the JSON error for a script (not
    aiohttp's bare "404: Not Found")."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPNotFound:
        if wants_html(request):
            return notice_response(request, "notFound", 404)
        return error_response(404, "not_found", f"Nothing here: {request.path}")
    return response


async def _start_worker(app: web.Application) -> None:
    state = app[STATE]
    # One analyser source per lane (`--analysis-processes`), built side by side: each loads the models.
    lanes = state.config.analysis_processes
    sources = await asyncio.gather(
        *(asyncio.to_thread(state.source_factory, state.config) for _ in range(lanes))
    )
    # The analysis processes are the sources with a health of their own (/healthz) and a child to stop.
    state.analysis_processes = [s for s in sources if isinstance(s, AnalysisProcess)]
    # The worker threads run the analysis themselves at low priority, or only wait for the analysis
    # processes, which have lowered their own.
    worker = AnalysisWorker(sources, state.metrics, lower_priority=not state.analysis_processes)
    worker.start()
    state.worker = worker
    logger.info("models loaded; analysis worker running (%d lanes)", len(sources))


async def _close_sessions(app: web.Application) -> None:
    state = app[STATE]
    await state.registry.close_all("shutdown")


async def _stop_worker(app: web.Application) -> None:
    state = app[STATE]
    if state.worker is not None:
        await asyncio.to_thread(state.worker.stop)
        state.worker = None
    for process in state.analysis_processes:
        await asyncio.to_thread(process.close)
    state.analysis_processes = []


def _page(name: str) -> Callable[[web.Request], Any]:
    async def page(request: web.Request) -> web.StreamResponse:
        path: Path = request.app[STATE].config.static_dir / name
        if not path.is_file():
            return error_response(404, "not_found", f"{name} is missing from the static folder")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return page


async def _config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    config = state.config
    width, height = config.video_size
    return web.json_response(
        {
            # The TURN credentials are the cameras'; the operator's token alone (the dashboard) does not
            # get them.
            "iceServers": []
            if request.get(CREDENTIAL) == OPERATOR_ONLY
            else [server.to_json() for server in config.ice_servers],
            "maxSessions": config.session_limit,
            "activeSessions": len(state.registry),
            "dataChannelLabel": DATA_CHANNEL_LABEL,
            "labels": list(LABELS),
            "labelText": dict(SHORT_TEXT),
            "labelColours": {label: _hex_colour(LABEL_COLOURS_BGR[label]) for label in LABELS},
            "verdicts": dict(LABEL_VERDICTS),
            "compliantLabels": [label for label in LABELS if is_compliant(label)],
            "video": {"width": width, "height": height, "frameRate": CAMERA_FRAME_RATE},
            "idleTimeoutSeconds": config.idle_timeout,
            "unnamedLocation": UNNAMED,
            # Who draws the boxes by default, the frame rate a page that draws them sends at most, and how
            # old a result may be before its boxes are no longer drawn (the server's own limit).
            "overlay": {
                "mode": config.overlay,
                "frameRate": config.page_frame_rate,
                "staleSeconds": STALE_AFTER_S,
            },
        },
        headers={"Cache-Control": "no-store"},
    )


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.worker is None or not state.worker.running:
        return web.json_response({"status": "loading"}, status=503)
    analysis = next((p for p in state.analysis_processes if not p.available), None)
    if analysis is not None:
        # Video still flows, without boxes: the operator's monitoring must see that the product is down.
        return web.json_response(
            {"status": "analysis-down", "error": analysis.last_error or "the analysis process is restarting"},
            status=503,
        )
    writer = request.app[HISTORY].writer
    return web.json_response(
        {
            "status": "ok",
            "sessions": len(state.registry),
            "maxSessions": state.registry.max_sessions,
            # A sink or the database down does not make the server unhealthy: what it needs waits.
            "waiting": writer.pending if writer is not None else 0,
            "sinks": [
                {"name": s.name, "connected": s.connected, "queued": s.queued}
                for s in request.app[EVENTS].statuses()
            ],
        }
    )


async def _metrics(request: web.Request) -> web.Response:
    writer = request.app[HISTORY].writer
    request.app[STATE].metrics.passages_waiting.set(writer.pending if writer is not None else 0)
    request.app[EVENTS].update_metrics()
    body = request.app[STATE].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response


async def _offer(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.metrics.offers.inc()
    try:
        offer = await _read_offer(request)
    except _Rejection as rejection:
        state.metrics.offers_rejected.labels(reason=rejection.reason).inc()
        return rejection.response
    if state.worker is None:
        state.metrics.offers_rejected.labels(reason="loading").inc()
        return error_response(
            503,
            "loading",
            "The server is still loading its models; try again shortly.",
            headers={"Retry-After": str(LOADING_RETRY_AFTER_S)},
        )
    passages = request.app[HISTORY].session_passages(offer.location) if offer.counted else None
    try:
        session = state.registry.create(
            state.config.ice_servers,
            state.worker,
            state.config.idle_timeout,
            state.recorder_factory,
            passages,
            label_text=offer.lang in VIDEO_TEXT_LANGUAGES,
            overlay=offer.overlay or state.config.overlay,
        )
    except CapacityError:
        if passages is not None:
            passages.finish()
        state.metrics.offers_rejected.labels(reason="capacity").inc()
        return error_response(
            503,
            "capacity",
            f"The server is at capacity ({state.registry.max_sessions} cameras); try again later.",
            headers={"Retry-After": str(CAPACITY_RETRY_AFTER_S)},
            maxSessions=state.registry.max_sessions,
        )
    try:
        answer_sdp = await session.answer(offer.sdp)
    except OfferError as exc:
        await session.close("rejected")
        state.metrics.offers_rejected.labels(reason="bad_sdp").inc()
        return error_response(400, "bad_sdp", f"Cannot answer this offer: {exc}")
    except BaseException:
        await asyncio.shield(session.close("rejected"))
        raise
    logger.info(
        "session opened",
        extra={
            "session": session.id,
            "remote": request.remote,
            "location": offer.location,
            "overlay": session.overlay,
        },
    )
    return web.json_response({"sdp": answer_sdp, "type": "answer", "session": session.id})


class _Rejection(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.response = error_response(status, reason, message)


@dataclass(frozen=True)
class Offer:
    """What an offer's body carries: the SDP, the camera's location name (checked), whether its passages
    are counted in the history (the main page without `?location=` sends `"count": false`), and the
    viewer's language (the video names the classes only in a language OpenCV can draw); and who draws the
    boxes when the client says (None: the server's `--overlay`)."""

    sdp: str
    location: str
    counted: bool = True
    lang: str = "en"
    overlay: str | None = None


VIDEO_TEXT_LANGUAGES = frozenset({"en"})
LOADING_RETRY_AFTER_S = 2
CAPACITY_RETRY_AFTER_S = 10
"""`Retry-After` of the offer's 503s: the models load in seconds; a full server frees a place when a camera
leaves, rarely within seconds, and a page must not knock every second (the pages honour it, retry.js)."""
"""Languages whose class names the server draws into the video (OpenCV's fonts are ASCII only); for any
other the video carries each class's colour and symbol, and the page names the class."""


async def _read_offer(request: web.Request) -> Offer:
    """The offer from a `{"sdp", "type": "offer", "location"?, "overlay"?}` body, or a _Rejection with the
    4xx to send."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        limit = request.app[STATE].config.max_body_bytes
        raise _Rejection(413, "too_large", f"Request body larger than {limit} bytes.") from exc
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise _Rejection(400, "bad_json", "The body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise _Rejection(400, "bad_json", 'The body must be a JSON object {"sdp": ..., "type": "offer"}.')
    if body.get("type") != "offer":
        raise _Rejection(400, "bad_offer", 'Expected "type": "offer".')
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or not sdp.strip():
        raise _Rejection(400, "bad_offer", 'Expected "sdp" to be the offer\'s SDP text.')
    try:
        location = parse_location(body.get("location"))
    except ValueError as exc:
        raise _Rejection(400, "bad_location", str(exc)) from exc
    counted = body.get("count", True)
    if not isinstance(counted, bool):
        raise _Rejection(400, "bad_offer", 'Expected "count" to be true or false.')
    lang = body.get("lang", "en")
    if not isinstance(lang, str) or not 2 <= len(lang) <= 16:
        raise _Rejection(400, "bad_offer", 'Expected "lang" to be a language tag such as "en" or "ko".')
    overlay = body.get("overlay")
    if overlay is not None and overlay not in OVERLAY_MODES:
        choices = " or ".join(f'"{mode}"' for mode in OVERLAY_MODES)
        raise _Rejection(400, "bad_overlay", f'Expected "overlay" to be {choices}.')
    return Offer(sdp=sdp, location=location, counted=counted, lang=lang.lower(), overlay=overlay)

"""Every server setting in one place: a command-line flag, each also settable by a MASKCAM_ variable.

A flag given on the command line wins over the environment, which wins over the default.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from vision import model_options
from vision.detectors import DEFAULT_DETECTOR, DETECTOR_NAMES, DetectorSpec
from vision.model_options import DEFAULT_CLASSIFIER, DETECTOR_DEFAULTS_TEXT, confidence_argument
from vision.stream import StreamSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HISTORY = str(PROJECT_ROOT / "data" / "history.sqlite3")
HISTORY_DETAILS = ("passages", "counts")
ENV_PREFIX = "MASKCAM_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class ConfigError(ValueError):
    """A setting has a value the server cannot use."""


@dataclass(frozen=True)
class IceServer:
    """One STUN/TURN server, as RTCPeerConnection's iceServers entries describe it."""

    url: str
    username: str | None = None
    credential: str | None = None

    def to_json(self) -> dict[str, str]:
        entry = {"urls": self.url}
        if self.username is not None:
            entry["username"] = self.username
        if self.credential is not None:
            entry["credential"] = self.credential
        return entry


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    https: bool = False
    cert: Path = PROJECT_ROOT / "certs" / "server.crt"
    key: Path = PROJECT_ROOT / "certs" / "server.key"
    ice_servers: tuple[IceServer, ...] = ()
    max_sessions: int = 4
    idle_timeout: float = 10.0
    classifier: Path = DEFAULT_CLASSIFIER
    detector: str = DEFAULT_DETECTOR
    prototxt: Path | None = None
    caffemodel: Path | None = None
    detector_size: tuple[int, int] | None = None
    """None: the detector's own default (`vision.detectors`)."""
    detect_every: int = StreamSettings().detect_every
    confidence: float | None = None
    """None: the detector's own default (`vision.detectors`)."""
    log_format: str = "text"
    log_level: str = "INFO"
    token: str | None = None
    offers_per_minute: int = 30
    max_body_bytes: int = 65536
    record: Path | None = None
    history: str | None = None
    """SQLite file or postgresql:// URL of the compliance history; None: no history (run_server.py's
    default is DEFAULT_HISTORY, `--no-history` turns it off)."""
    history_days: float = 90.0
    history_detail: str = "passages"
    history_queue: int = 10000
    passage_gap: float = 1.0
    passage_min_frames: int = 3
    admin_token: str | None = None
    video_size: tuple[int, int] = (640, 480)
    """What the page and the kiosk ask the camera for (`/config`'s `video`), width x height."""
    static_dir: Path = field(default=PROJECT_ROOT / "static")

    @property
    def detector_spec(self) -> DetectorSpec:
        return DetectorSpec(
            self.detector, self.detector_size, self.confidence, self.prototxt, self.caffemodel
        )


def parse_ice_server(url: str, username: str | None = None, credential: str | None = None) -> IceServer:
    """`turn:USER:PASS@host:port?transport=udp` or a plain URL that takes the separate credentials.

    Separate credentials apply only to turn:/turns: URLs (STUN takes none).
    """
    url = url.strip()
    scheme = next((s for s in _ICE_SCHEMES if url.lower().startswith(s)), None)
    if scheme is None:
        raise ConfigError(f"ICE server {url!r} must start with one of {', '.join(_ICE_SCHEMES)}")
    rest = url[len(scheme) :]
    if "@" in rest:
        userinfo, _, host = rest.rpartition("@")
        user, sep, password = userinfo.partition(":")
        if not sep or not user or not host:
            raise ConfigError(f"ICE server {url!r}: inline credentials must look like {scheme}USER:PASS@host")
        return IceServer(url=scheme + host, username=unquote(user), credential=unquote(password))
    if not rest:
        raise ConfigError(f"ICE server {url!r} has no host")
    if scheme.startswith("turn") and (username is not None or credential is not None):
        return IceServer(url=url, username=username, credential=credential)
    return IceServer(url=url)


def parse_detector_size(text: str) -> tuple[int, int]:
    """`vision.model_options.parse_detector_size`, failing with a ConfigError."""
    try:
        return model_options.parse_detector_size(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def parse_video_size(text: str) -> tuple[int, int]:
    """`WxH` (e.g. 1280x720), each side 16 to 4096 pixels and even (video encoders need even sizes)."""
    match = re.fullmatch(r"\s*(\d{2,4})\s*[xX]\s*(\d{2,4})\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (e.g. 640x480)")
    width, height = int(match[1]), int(match[2])
    if not (16 <= width <= 4096 and 16 <= height <= 4096) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be an even number from 16 to 4096")
    return width, height


def _env_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (1/0, true/false, yes/no, on/off)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def env_name(dest: str) -> str:
    return ENV_PREFIX + dest.upper()


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The parser, with defaults taken from the environment where a MASKCAM_ variable is set."""
    parser = argparse.ArgumentParser(
        prog="run_server.py",
        description="Real-time face-mask detection over WebRTC. "
        f"Every flag can also be set by the environment variable shown ({ENV_PREFIX}<FLAG>).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = ServerConfig()

    def add(flag: str, help_text: str, **kwargs: Any) -> None:
        dest = flag.lstrip("-").replace("-", "_")
        parser.add_argument(flag, dest=dest, help=f"{help_text} [env {env_name(dest)}]", **kwargs)

    add("--host", "address to bind; 0.0.0.0 serves the LAN", default=defaults.host)
    add("--port", "TCP port", type=int, default=defaults.port)
    add(
        "--https",
        "serve HTTPS (phones need a secure context for the camera)",
        action=argparse.BooleanOptionalAction,
        default=defaults.https,
    )
    add(
        "--cert",
        "TLS certificate; with --https and no file, a self-signed one is made (and renewed)",
        default=defaults.cert,
    )
    add("--key", "TLS private key (made with the self-signed certificate)", default=defaults.key)
    add(
        "--ice-server",
        "STUN/TURN URL, repeatable; credentials inline as turn:USER:PASS@host:3478 "
        "(environment: comma-separated list)",
        action="append",
        default=None,
        metavar="URL",
    )
    add("--ice-username", "username for every turn:/turns: URL without inline credentials", default=None)
    add("--ice-credential", "password for every turn:/turns: URL without inline credentials", default=None)
    add("--max-sessions", "concurrent WebRTC sessions", type=_positive_int, default=defaults.max_sessions)
    add(
        "--idle-timeout",
        "seconds without a video frame before a session is closed",
        type=_positive_float,
        default=defaults.idle_timeout,
    )
    add("--classifier", "mask classifier model (.onnx or .pt)", default=defaults.classifier)
    add(
        "--detector",
        "face detector (res10 is the original project's)",
        choices=DETECTOR_NAMES,
        default=defaults.detector,
    )
    add("--prototxt", "res10 prototxt (default: the packaged res10 SSD)", default=None)
    add("--caffemodel", "res10 caffemodel (default: the packaged res10 SSD)", default=None)
    add(
        "--detector-size",
        f"face detector input size, N or WxH (default: the detector's own: {DETECTOR_DEFAULTS_TEXT})",
        default=None,
    )
    add(
        "--detect-every",
        "full face detection on every N-th analysed frame, faces followed in between; 1 = every frame",
        type=_positive_int,
        default=defaults.detect_every,
    )
    add(
        "--confidence",
        f"face detector confidence threshold (default: the detector's own: {DETECTOR_DEFAULTS_TEXT})",
        type=confidence_argument,
        default=defaults.confidence,
    )
    add("--log-format", "log format", choices=("text", "json"), default=defaults.log_format)
    add(
        "--log-level",
        "log level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default=defaults.log_level,
    )
    add("--token", "access token required by every route but /healthz (?token=...)", default=None)
    add(
        "--offers-per-minute",
        "offers accepted per client address per minute; 0 = no limit",
        type=_non_negative_int,
        default=defaults.offers_per_minute,
    )
    add(
        "--max-body-bytes",
        "largest accepted request body",
        type=_positive_int,
        default=defaults.max_body_bytes,
    )
    add("--record", "write annotated analysed frames and messages under DIR (off by default)", default=None)
    add(
        "--history",
        "compliance history: an SQLite file, or postgresql://USER:PASS@HOST/DB shared by several servers",
        default=DEFAULT_HISTORY,
    )
    add("--no-history", "keep no compliance history at all", action="store_true", default=False)
    add(
        "--history-days",
        "passages older than this many days are deleted (daily)",
        type=_positive_float,
        default=defaults.history_days,
    )
    add(
        "--history-detail",
        "passages: one row per person (time, location, label, confidence, duration, face size class); "
        "counts: only per-15-minute counts per location and label",
        choices=HISTORY_DETAILS,
        default=defaults.history_detail,
    )
    add(
        "--history-queue",
        "passages kept waiting while the database is unreachable; beyond, they are dropped and counted",
        type=_positive_int,
        default=defaults.history_queue,
    )
    add(
        "--passage-gap",
        "seconds without a face after which its passage has ended",
        type=_positive_float,
        default=defaults.passage_gap,
    )
    add(
        "--passage-min-frames",
        "analysed frames a face must be seen in to count as a passage",
        type=_positive_int,
        default=defaults.passage_min_frames,
    )
    add(
        "--admin-token",
        "token for the /api/* history routes (the camera --token does not open them); "
        "without it they answer only clients on this machine",
        default=None,
    )
    add(
        "--video-size",
        "camera resolution the page and the kiosk ask for, WIDTHxHEIGHT (a page's ?resolution= wins)",
        type=parse_video_size,
        default="x".join(map(str, defaults.video_size)),
    )

    for action in parser._actions:
        if action.dest == "help":
            continue
        name = env_name(action.dest)
        if name not in environ:
            continue
        raw = environ[name]
        if isinstance(action, argparse.BooleanOptionalAction | argparse._StoreTrueAction):
            action.default = _env_bool(name, raw)
        elif action.dest == "ice_server":
            # An "append" default would be extended by the flags; parse_config reads this one itself.
            continue
        else:
            try:
                action.default = action.type(raw) if callable(action.type) else raw
            except (ValueError, argparse.ArgumentTypeError) as exc:
                raise ConfigError(f"{name}={raw!r}: {exc}") from exc
            if action.choices is not None and action.default not in action.choices:
                raise ConfigError(f"{name}={raw!r} is not one of {', '.join(map(str, action.choices))}")
    return parser


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Flags over environment over defaults. Bad values exit with argparse's usage message."""
    import os

    environment = os.environ if environ is None else environ
    try:
        parser = build_parser(environment)
    except ConfigError as exc:
        argparse.ArgumentParser(prog="run_server.py").error(str(exc))
    args = parser.parse_args(argv)
    ice_urls = args.ice_server
    if ice_urls is None:
        ice_urls = [url for url in environment.get(env_name("ice_server"), "").split(",") if url.strip()]
    try:
        ice_servers = tuple(parse_ice_server(url, args.ice_username, args.ice_credential) for url in ice_urls)
        detector_size = None if args.detector_size is None else parse_detector_size(str(args.detector_size))
    except ConfigError as exc:
        parser.error(str(exc))
    if args.admin_token and args.admin_token == args.token:
        # Every camera (phone, kiosk autostart file) knows the camera token: it must not open the history.
        parser.error("--admin-token must differ from --token (every camera's URL carries the camera token)")
    return ServerConfig(
        host=args.host,
        port=args.port,
        https=args.https,
        cert=Path(args.cert),
        key=Path(args.key),
        ice_servers=ice_servers,
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout,
        classifier=Path(args.classifier),
        detector=args.detector,
        prototxt=Path(args.prototxt) if args.prototxt else None,
        caffemodel=Path(args.caffemodel) if args.caffemodel else None,
        detector_size=detector_size,
        detect_every=args.detect_every,
        confidence=args.confidence,
        log_format=args.log_format,
        log_level=args.log_level,
        token=args.token or None,
        offers_per_minute=args.offers_per_minute,
        max_body_bytes=args.max_body_bytes,
        record=Path(args.record) if args.record else None,
        history=None if args.no_history or not args.history else str(args.history),
        history_days=args.history_days,
        history_detail=args.history_detail,
        history_queue=args.history_queue,
        passage_gap=args.passage_gap,
        passage_min_frames=args.passage_min_frames,
        admin_token=args.admin_token or None,
        video_size=args.video_size,
    )

"""Every server setting, declared once: a field of `ServerConfig` with its flag, type, default and help.

A flag given on the command line wins over the environment (`MASKCAM_<FLAG>`), which wins over the
default. The parser, the environment layer, `--help` and docs/API.md's settings table all come from the
declarations (`vision.settings_fields`); `tests/test_server_config.py` fails when the docs table differs.
To add a setting: add one field with `setting(...)` below, then paste `python -m server.settings
--markdown` between the markers of docs/API.md. The six model settings are `vision.model_options`'s,
shared with predict.py, the evaluation and the benchmark.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from vision.model_options import ModelSettings
from vision.settings_fields import (
    SettingError,
    add_arguments,
    from_namespace,
    markdown_table,
    optional_path,
    optional_text,
    setting,
)
from vision.stream import StreamSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HISTORY = str(PROJECT_ROOT / "data" / "history.sqlite3")
DEFAULT_SPOOL = PROJECT_ROOT / "data" / "spool.sqlite3"
HISTORY_DETAILS = ("passages", "counts")
ENV_PREFIX = "MASKCAM_"
OVERLAY_MODES = ("server", "page")
SESSIONS_BY_OVERLAY = {"server": 4, "page": 8}
"""The default `--max-sessions` of each `--overlay` mode: the cameras that one instance on 2 cores serves
with every capacity target of bench/RESULTS.md met (issue 22; docs/DEPLOY.md, "Capacity")."""
"""Who draws the boxes: the server, into the video it sends back; or the page, over its own preview (no
video back, the camera's frame rate capped)."""
TABLE_BEGIN = "<!-- settings table: python -m server.settings --markdown -->"
TABLE_END = "<!-- end of settings table -->"
_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class ConfigError(SettingError):
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


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def parse_video_size(text: str) -> tuple[int, int]:
    """`WxH` (e.g. 1280x720), each side 16 to 4096 pixels and even (video encoders need even sizes)."""
    match = re.fullmatch(r"\s*(\d{2,4})\s*[xX]\s*(\d{2,4})\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (e.g. 640x480)")
    width, height = int(match[1]), int(match[2])
    if not (16 <= width <= 4096 and 16 <= height <= 4096) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be an even number from 16 to 4096")
    return width, height


@dataclass(frozen=True)
class MqttTarget:
    """A broker from `mqtt://[user:pass@]host[:port]` (1883) or `mqtts://...` (TLS, 8883)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def describe(self) -> str:
        """For logs and the dashboard: without the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttTarget | None:
    """`--mqtt`: the broker of an `mqtt://` or `mqtts://` URL (empty: none); a clear error otherwise."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise argparse.ArgumentTypeError(f"{url!r}: expected mqtt://[USER:PASS@]HOST[:PORT] or mqtts://...")
    try:
        port = parts.port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{url!r}: {exc}") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise argparse.ArgumentTypeError(f"{url!r}: expected a host (and port), no path or query")
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def parse_topic_prefix(text: str) -> str:
    """Topic levels of letters, digits, `_` and `-` split by `/` (no wildcard, no empty level)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, _ and - in levels split by /")
    return text


def parse_webhook_url(url: str) -> str:
    """An http:// or https:// URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{url!r}: expected an http:// or https:// URL with a host")
    return url


@dataclass(frozen=True)
class ServerConfig(ModelSettings):
    """The server's settings: the model settings (`ModelSettings`) and the fields below, in --help's order.

    The dataclass defaults are what code and tests get from `ServerConfig()`; the command line's differ
    only where a declaration says `cli_default` (the history file).
    """

    host: str = setting("127.0.0.1", "address to bind; `0.0.0.0` for the LAN")
    port: int = setting(8080, "TCP port", parse=int)
    https: bool = setting(False, "serve HTTPS (phones need it for the camera)", switch=True)
    cert: Path = setting(
        PROJECT_ROOT / "certs" / "server.crt",
        "TLS certificate; with `--https` and no file there, a self-signed pair is created once and reused",
        parse=Path,
        shown_default="`certs/server.crt`",
    )
    key: Path = setting(
        PROJECT_ROOT / "certs" / "server.key",
        "TLS private key (made with the self-signed certificate)",
        parse=Path,
        shown_default="`certs/server.key`",
    )
    ice_server: tuple[str, ...] = setting(
        (),
        "STUN/TURN URL; credentials inline as `turn:USER:PASS@host:3478`",
        repeat=True,
        metavar="URL",
    )
    ice_username: str | None = setting(
        None, "username for every `turn:`/`turns:` URL without inline credentials", parse=optional_text
    )
    ice_credential: str | None = setting(
        None, "password for every `turn:`/`turns:` URL without inline credentials", parse=optional_text
    )
    max_sessions: int | None = setting(
        None,
        "concurrent WebRTC sessions; beyond it `/offer` answers 503. Default: the measured capacity of "
        '2 cores in the server\'s `--overlay` mode (docs/DEPLOY.md, "Capacity")',
        parse=_positive_int,
        shown_default="`4`; `8` with `--overlay page`",
    )
    idle_timeout: float = setting(
        10.0, "seconds without a video frame before a session is closed", parse=_positive_float
    )
    detect_every: int = setting(
        StreamSettings().detect_every,
        "full face detection on every N-th analysed frame of a session (and at a scene cut), faces "
        "followed by optical flow in between (`vision/stream.py`); `1` = full detection on every "
        "analysed frame",
        parse=_positive_int,
    )
    detect_interval: float = setting(
        StreamSettings().detect_interval_s or 0.0,
        "a full face detection at least every this many seconds per session, however few of its frames "
        "are analysed (many cameras): a face that enters is found within it; `0` = by `--detect-every` "
        "alone",
        parse=_non_negative_float,
        shown_default="`0.5`",
    )
    analysis_processes: int = setting(
        2,
        "analysis processes (lanes): each runs the models for its share of the sessions, a session "
        "staying in one; a second one keeps the analysis busy while the server hands it the next frame, "
        "and uses a second core (bench/RESULTS.md, issue 22)",
        parse=_positive_int,
    )
    log_format: str = setting(
        "text", "log format: `text` or `json` (one object per line)", choices=("text", "json")
    )
    log_level: str = setting(
        "INFO", "log level", parse=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    token: str | None = setting(
        None,
        "access token required by every route except `/healthz` (`?token=...` in the page URL)",
        parse=optional_text,
    )
    offers_per_minute: int = setting(
        30, "offers per client address per minute; `0` = no limit", parse=_non_negative_int
    )
    max_body_bytes: int = setting(65536, "largest request body; larger -> 413", parse=_positive_int)
    record: Path | None = setting(
        None,
        "write annotated analysed frames + messages under DIR (no image is stored otherwise)",
        parse=optional_path,
        metavar="DIR",
        shown_default="off",
    )
    history: str | None = setting(
        None,
        "compliance history: SQLite file, or `postgresql://USER:PASS@HOST/DB` shared by several servers",
        parse=optional_text,
        metavar="PATH|URL",
        cli_default=DEFAULT_HISTORY,
        shown_default="`data/history.sqlite3`",
    )
    """SQLite file or postgresql:// URL of the compliance history; None: no history (the command line's
    default is DEFAULT_HISTORY; `--no-history` turns it off)."""
    no_history: bool = setting(False, "keep no history", switch=True, negatable=False)
    history_days: float = setting(
        90.0, "delete passages older than this many days (daily)", parse=_positive_float, shown_default="90"
    )
    history_detail: str = setting(
        "passages",
        "`passages` (a row per person) or `counts` (per-15-minute counts per location and label, and "
        "random write-batch ids with their UTC day for two days, only)",
        choices=HISTORY_DETAILS,
    )
    history_queue: int = setting(
        10000,
        "passages kept waiting (in the spool) while the database is unreachable; beyond, the oldest are "
        "dropped and counted",
        parse=_positive_int,
    )
    passage_gap: float = setting(
        1.0, "seconds without a face that end its passage", parse=_positive_float, shown_default="1"
    )
    passage_min_frames: int = setting(
        3, "analysed frames a face needs to count as a passage", parse=_positive_int
    )
    admin_token: str | None = setting(
        None,
        "token of the `/api/*` routes and `/dashboard` (must differ from `--token`: the same value is a "
        "startup error); without it they answer loopback clients only",
        parse=optional_text,
    )
    video_size: tuple[int, int] = setting(
        (640, 480),
        "camera size the page and the kiosk ask for (`/config`'s `video`), `WIDTHxHEIGHT`, even sides "
        "from 16 to 4096; a page's `?resolution=` wins",
        parse=parse_video_size,
        shown_default="640x480",
    )
    spool: Path | None = setting(
        None,
        "local SQLite file where passages wait, across restarts, for the history database and for each "
        "event sink; one per server",
        parse=optional_path,
        metavar="PATH",
        cli_default=DEFAULT_SPOOL,
        shown_default="`data/spool.sqlite3`",
    )
    """None: passages wait in memory only (tests; the command line's default is DEFAULT_SPOOL)."""
    mqtt: MqttTarget | None = setting(
        None,
        "MQTT broker for events (passages, live state, today's counts, Home Assistant discovery): "
        "`mqtt://[USER:PASS@]HOST[:PORT]`, `mqtts://` for TLS",
        parse=parse_mqtt_url,
        metavar="URL",
        shown_default="off",
    )
    mqtt_prefix: str = setting("maskcam", "first topic level(s) of the MQTT events", parse=parse_topic_prefix)
    mqtt_discovery_prefix: str = setting(
        "homeassistant", "Home Assistant's MQTT discovery prefix", parse=parse_topic_prefix
    )
    mqtt_ca: Path | None = setting(
        None,
        "CA certificates (PEM) for `mqtts://`; by default the system's",
        parse=optional_path,
        metavar="FILE",
        shown_default="the system's",
    )
    webhook: tuple[str, ...] = setting(
        (),
        "URL that receives each stored passage as a signed JSON POST (repeatable)",
        parse=parse_webhook_url,
        repeat=True,
        metavar="URL",
    )
    webhook_secret: str | None = setting(
        None, "HMAC-SHA256 key of the webhooks' `X-Maskcam-Signature`", parse=optional_text
    )
    events_queue: int = setting(
        10000,
        "passages kept waiting per event sink (in the spool); beyond, the oldest are dropped and counted",
        parse=_positive_int,
    )
    overlay: str = setting(
        "server",
        "who draws the boxes: `server` (into the video sent back) or `page` (over the page's own camera "
        "preview: no video back, no encoder, the camera's frame rate capped); a page's `?overlay=` and an "
        'offer\'s `"overlay"` win',
        choices=OVERLAY_MODES,
    )
    page_frame_rate: int = setting(
        15,
        "frames/s at most that a page in `page` overlay mode sends (`/config`'s `overlay.frameRate`, the "
        "browser's `maxFramerate`): the analysis uses no more",
        parse=_positive_int,
    )
    ice_servers: tuple[IceServer, ...] = ()
    """Derived from `ice_server`, `ice_username` and `ice_credential` by `parse_config`."""
    static_dir: Path = field(default=PROJECT_ROOT / "static")

    @classmethod
    def with_models(cls, models: ModelSettings, **settings: object) -> ServerConfig:
        """The server's settings for these model settings (a tool that measures the server's analysis with
        the models a command line chose), the other fields from ``settings`` or their defaults."""
        chosen = {declared.name: getattr(models, declared.name) for declared in fields(ModelSettings)}
        return cls(**chosen, **settings)  # type: ignore[arg-type]

    @property
    def session_limit(self) -> int:
        """`--max-sessions`, or by default the measured capacity of the server's overlay mode: a page in
        page mode sends half the frames and takes no video back, so 2 cores serve twice the cameras."""
        if self.max_sessions is not None:
            return self.max_sessions
        return SESSIONS_BY_OVERLAY[self.overlay]


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


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The parser, with defaults taken from the environment where a MASKCAM_ variable is set."""
    parser = argparse.ArgumentParser(
        prog="run_server.py",
        description="Real-time face-mask detection over WebRTC. "
        f"Every flag can also be set by the environment variable shown ({ENV_PREFIX}<FLAG>).",
    )
    add_arguments(parser, ServerConfig, environ, ENV_PREFIX)
    return parser


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Flags over environment over defaults. Bad values exit with argparse's usage message."""
    import os

    environment = os.environ if environ is None else environ
    try:
        parser = build_parser(environment)
    except SettingError as exc:
        argparse.ArgumentParser(prog="run_server.py").error(str(exc))
    config = ServerConfig(**from_namespace(ServerConfig, parser.parse_args(argv)))
    try:
        ice_servers = tuple(
            parse_ice_server(url, config.ice_username, config.ice_credential) for url in config.ice_server
        )
    except ConfigError as exc:
        parser.error(str(exc))
    if config.admin_token and config.admin_token == config.token:
        # Every camera (phone, kiosk autostart file) knows the camera token: it must not open the history.
        parser.error("--admin-token must differ from --token (every camera's URL carries the camera token)")
    return replace(config, ice_servers=ice_servers, history=None if config.no_history else config.history)


def settings_table() -> str:
    """docs/API.md's settings table (between TABLE_BEGIN and TABLE_END)."""
    return markdown_table(ServerConfig, ENV_PREFIX)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m server.settings --markdown   (prints docs/API.md's settings table)")
    sys.stdout.write(f"{TABLE_BEGIN}\n{settings_table()}{TABLE_END}\n")

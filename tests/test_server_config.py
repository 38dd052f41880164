"""Settings: flags, MASKCAM_ environment variables, precedence and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import (
    DEFAULT_HISTORY,
    DEFAULT_SPOOL,
    SESSIONS_BY_OVERLAY,
    ConfigError,
    IceServer,
    ServerConfig,
    build_parser,
    parse_config,
    parse_ice_server,
)


def test_defaults() -> None:
    config = parse_config([], {})
    # The command line keeps a history and a spool file by default; a ServerConfig built in code (tests)
    # keeps neither.
    assert config == ServerConfig(history=DEFAULT_HISTORY, spool=DEFAULT_SPOOL)
    assert DEFAULT_HISTORY.endswith("data/history.sqlite3")
    assert (config.history_detail, config.history_days, config.passage_gap) == ("passages", 90.0, 1.0)
    assert config.admin_token is None
    assert (config.host, config.port, config.https, config.session_limit) == ("127.0.0.1", 8080, False, 4)
    assert config.max_sessions is None
    assert config.ice_servers == ()
    assert config.record is None and config.token is None
    assert config.classifier.name == "mask_classifier.onnx"
    assert config.cert.parent.name == "certs"


def test_flags() -> None:
    config = parse_config(
        [
            "--host=0.0.0.0",
            "--port=9000",
            "--https",
            "--cert=/tmp/c.pem",
            "--key=/tmp/k.pem",
            "--ice-server=stun:stun.example.org:3478",
            "--ice-server=turn:turn.example.org:3478?transport=udp",
            "--ice-username=alice",
            "--ice-credential=s3cret",
            "--max-sessions=2",
            "--idle-timeout=4.5",
            "--classifier=models/x.pt",
            "--prototxt=a.prototxt",
            "--caffemodel=b.caffemodel",
            "--detector-size=400x300",
            "--confidence=0.7",
            "--log-format=json",
            "--log-level=debug",
            "--token=abc",
            "--offers-per-minute=0",
            "--max-body-bytes=1000",
            "--record=/tmp/rec",
        ],
        {},
    )
    assert (config.host, config.port, config.https) == ("0.0.0.0", 9000, True)
    assert (config.cert, config.key) == (Path("/tmp/c.pem"), Path("/tmp/k.pem"))
    assert config.ice_servers == (
        IceServer("stun:stun.example.org:3478"),
        IceServer("turn:turn.example.org:3478?transport=udp", "alice", "s3cret"),
    )
    assert (config.max_sessions, config.idle_timeout) == (2, 4.5)
    assert config.classifier == Path("models/x.pt")
    assert (config.prototxt, config.caffemodel) == (Path("a.prototxt"), Path("b.caffemodel"))
    assert (config.detector_size, config.confidence) == ((400, 300), 0.7)
    assert (config.log_format, config.log_level) == ("json", "DEBUG")
    assert (config.token, config.offers_per_minute, config.max_body_bytes) == ("abc", 0, 1000)
    assert config.record == Path("/tmp/rec")


def test_history_flags_and_variables() -> None:
    config = parse_config(
        [
            "--history=postgresql://u:p@db/maskcam",
            "--history-days=30",
            "--history-detail=counts",
            "--history-queue=50",
            "--passage-gap=2.5",
            "--passage-min-frames=4",
            "--admin-token=adm",
        ],
        {},
    )
    assert (config.history, config.history_days, config.history_detail) == (
        "postgresql://u:p@db/maskcam",
        30,
        "counts",
    )
    assert (config.history_queue, config.passage_gap, config.passage_min_frames) == (50, 2.5, 4)
    assert config.admin_token == "adm"
    assert parse_config(["--no-history"], {}).history is None
    assert parse_config([], {"MASKCAM_NO_HISTORY": "1"}).history is None
    assert parse_config([], {"MASKCAM_NO_HISTORY": "0"}).history == DEFAULT_HISTORY
    environ = {
        "MASKCAM_HISTORY": "/tmp/h.sqlite3",
        "MASKCAM_HISTORY_DETAIL": "counts",
        "MASKCAM_ADMIN_TOKEN": "a",
    }
    config = parse_config([], environ)
    assert (config.history, config.history_detail, config.admin_token) == ("/tmp/h.sqlite3", "counts", "a")


def test_every_flag_has_an_environment_variable_listed_in_help() -> None:
    parser = build_parser({})
    text = parser.format_help()
    for action in parser._actions:
        if action.dest != "help":
            assert f"MASKCAM_{action.dest.upper()}" in text


def test_environment_variables() -> None:
    environ = {
        "MASKCAM_HOST": "0.0.0.0",
        "MASKCAM_PORT": "8443",
        "MASKCAM_HTTPS": "yes",
        "MASKCAM_ICE_SERVER": "stun:a.example.org, turn:bob:pw%40x@b.example.org:3478",
        "MASKCAM_MAX_SESSIONS": "8",
        "MASKCAM_DETECTOR_SIZE": "360",
        "MASKCAM_LOG_FORMAT": "json",
        "MASKCAM_LOG_LEVEL": "warning",
        "MASKCAM_TOKEN": "tok",
        "MASKCAM_RECORD": "/tmp/r",
    }
    config = parse_config([], environ)
    assert (config.host, config.port, config.https, config.max_sessions) == ("0.0.0.0", 8443, True, 8)
    assert config.ice_servers == (
        IceServer("stun:a.example.org"),
        IceServer("turn:b.example.org:3478", "bob", "pw@x"),
    )
    assert config.detector_size == (360, 360)
    assert (config.log_format, config.log_level, config.token) == ("json", "WARNING", "tok")
    assert config.record == Path("/tmp/r")


def test_flags_win_over_environment() -> None:
    environ = {"MASKCAM_PORT": "8443", "MASKCAM_HTTPS": "1", "MASKCAM_ICE_SERVER": "stun:env.example.org"}
    config = parse_config(["--port=9001", "--no-https", "--ice-server=stun:flag.example.org"], environ)
    assert (config.port, config.https) == (9001, False)
    assert config.ice_servers == (IceServer("stun:flag.example.org"),)


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["--port=abc"], {}),
        (["--max-sessions=0"], {}),
        (["--confidence=1.5"], {}),
        (["--log-format=xml"], {}),
        (["--detector-size=10"], {}),
        (["--ice-server=http://x"], {}),
        ([], {"MASKCAM_PORT": "eighty"}),
        ([], {"MASKCAM_HTTPS": "maybe"}),
        ([], {"MASKCAM_LOG_FORMAT": "xml"}),
        (["--history-detail=faces"], {}),
        (["--history-days=0"], {}),
        (["--passage-gap=-1"], {}),
        ([], {"MASKCAM_NO_HISTORY": "perhaps"}),
    ],
)
def test_bad_values_exit_with_usage(
    argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(argv, environ)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["--token=same-secret", "--admin-token=same-secret"], {}),
        ([], {"MASKCAM_TOKEN": "same-secret", "MASKCAM_ADMIN_TOKEN": "same-secret"}),
        (["--admin-token=same-secret"], {"MASKCAM_TOKEN": "same-secret"}),
    ],
)
def test_an_admin_token_equal_to_the_camera_token_is_refused(
    argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(argv, environ)
    assert exit_info.value.code == 2
    assert "--admin-token must differ from --token" in capsys.readouterr().err
    different = parse_config(["--token=camera-secret", "--admin-token=admin-secret"], {})
    assert (different.token, different.admin_token) == ("camera-secret", "admin-secret")


def test_ice_server_forms() -> None:
    assert parse_ice_server("turn:u:p@h:3478") == IceServer("turn:h:3478", "u", "p")
    assert parse_ice_server("turns:h:5349", "u", "p") == IceServer("turns:h:5349", "u", "p")
    assert parse_ice_server("stun:h:3478", "u", "p") == IceServer("stun:h:3478")
    assert IceServer("stun:h").to_json() == {"urls": "stun:h"}
    assert IceServer("turn:h", "u", "p").to_json() == {"urls": "turn:h", "username": "u", "credential": "p"}
    for bad in ("h:3478", "turn:", "turn:nopass@h"):
        with pytest.raises(ConfigError):
            parse_ice_server(bad)


def test_detector_size_forms() -> None:
    assert parse_config(["--detector-size", "300"], {}).detector_size == (300, 300)
    assert parse_config([], {"MASKCAM_DETECTOR_SIZE": "480X360"}).detector_size == (480, 360)
    for bad in ("x", "1x2x3", "0", "5000"):
        with pytest.raises(SystemExit):
            parse_config(["--detector-size", bad], {})
        with pytest.raises(SystemExit):
            parse_config([], {"MASKCAM_DETECTOR_SIZE": bad})


def test_docs_settings_table_is_the_declarations() -> None:
    """docs/API.md's settings table is generated from the declarations: an edit of either alone fails."""
    from server.settings import TABLE_BEGIN, TABLE_END, settings_table

    docs = (Path(__file__).resolve().parents[1] / "docs" / "API.md").read_text(encoding="utf-8")
    table = docs.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"
    assert table == settings_table(), "paste `python -m server.settings --markdown` into docs/API.md"


def test_a_new_setting_is_one_field() -> None:
    """Adding a setting is one declared field: its flag, env variable, --help and docs row follow."""
    from dataclasses import dataclass

    from vision.settings_fields import add_arguments, from_namespace, markdown_table, setting

    @dataclass(frozen=True)
    class WithGreeting(ServerConfig):
        greeting_seconds: float = setting(2.5, "how long the kiosk greets", parse=float)

    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser, WithGreeting, {"MASKCAM_GREETING_SECONDS": "4"}, "MASKCAM_")
    assert "MASKCAM_GREETING_SECONDS" in parser.format_help()
    assert WithGreeting(**from_namespace(WithGreeting, parser.parse_args([]))).greeting_seconds == 4.0
    flagged = WithGreeting(**from_namespace(WithGreeting, parser.parse_args(["--greeting-seconds", "1"])))
    assert flagged.greeting_seconds == 1.0
    assert "| `--greeting-seconds` | `MASKCAM_GREETING_SECONDS` | `2.5` | how long the kiosk greets |" in (
        markdown_table(WithGreeting, "MASKCAM_")
    )


def test_the_session_cap_follows_the_overlay_mode_unless_set() -> None:
    """Page mode's cameras cost the server half as much (bench/RESULTS.md, issue 22): its default cap is
    higher; an operator's --max-sessions wins in either mode."""
    assert parse_config([], {}).session_limit == SESSIONS_BY_OVERLAY["server"] == 4
    assert parse_config(["--overlay", "page"], {}).session_limit == SESSIONS_BY_OVERLAY["page"] == 8
    assert parse_config(["--overlay", "page", "--max-sessions", "3"], {}).session_limit == 3
    assert parse_config([], {"MASKCAM_MAX_SESSIONS": "6"}).session_limit == 6


def test_a_tool_gets_the_server_settings_of_the_models_it_was_given() -> None:
    from vision.model_options import ModelSettings

    models = ModelSettings(classifier=Path("other.onnx"), confidence=0.9)
    config = ServerConfig.with_models(models, detect_every=1)
    assert (config.classifier, config.confidence, config.detect_every) == (Path("other.onnx"), 0.9, 1)
    assert config.detector == ModelSettings().detector and config.port == ServerConfig().port

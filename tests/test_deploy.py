"""Deployment files (no Docker engine here): they name real settings, run the real server, stay in sync."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from server.settings import parse_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
LOCAL_PACKAGES = {"server", "vision", "training", "run_server"}

sys.path.insert(0, str(DEPLOY))
import healthcheck  # noqa: E402


@cache
def help_text() -> str:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MASKCAM_")}
    environment["COLUMNS"] = "1000"  # no wrapping: argparse may break a long flag at its hyphens
    result = subprocess.run(
        [sys.executable, "run_server.py", "--help"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def help_flags() -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", help_text())) - {"--help", "--no-https"}


def help_env_names() -> set[str]:
    return set(re.findall(r"\bMASKCAM_[A-Z_]+\b", help_text()))


def _requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in _dockerfile_instructions():
        if keyword == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", arguments)))
    return env


def _compose_service_environment(service: str) -> dict[str, str]:
    """The `environment:` mapping of one service in docker-compose.yml (block style, as written there)."""
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    start = lines.index(f"  {service}:")
    env: dict[str, str] = {}
    inside = False
    for line in lines[start + 1 :]:
        if re.match(r"^  \S", line):
            break
        if line.strip() == "environment:":
            inside = True
            continue
        if inside:
            match = re.match(r"^      (\w+): (.*)$", line)
            if not match:
                break
            env[match[1]] = match[2].strip().strip('"')
    return env


def _interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` (error when unset or empty)."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match[1], match[2], match[3]
        given = variables.get(name, "")
        if operator == ":-":
            return given or argument
        if operator == ":?" and not given:
            raise KeyError(f"{name}: {argument}")
        return given

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", substitute, value)


def _example_env() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "maskcam.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


# --- requirements -------------------------------------------------------------------------------------


def test_runtime_requirements_are_verbatim_lines_of_requirements_txt() -> None:
    full = set(_requirements(ROOT / "requirements.txt"))
    runtime = _requirements(DEPLOY / "requirements-runtime.txt")
    assert runtime
    assert [line for line in runtime if line not in full] == []
    assert not any(Requirement(line).name in ("torch", "torchvision", "pytest") for line in runtime)


def test_runtime_constraints_satisfy_runtime_requirements() -> None:
    pins = {
        canonicalize_name(name): version
        for name, version in (line.split("==") for line in _requirements(DEPLOY / "constraints-runtime.txt"))
    }
    for line in _requirements(DEPLOY / "requirements-runtime.txt"):
        requirement = Requirement(line)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not pinned in constraints-runtime.txt"
        assert requirement.specifier.contains(pinned), f"{requirement.name}=={pinned} violates {line}"


def _module_level_imports(path: Path) -> Iterator[str]:
    """Modules that importing `path` imports: top-level statements, not functions or TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)


def _server_import_closure() -> set[str]:
    """Third-party top-level modules that importing run_server.py (and the app it builds) pulls in."""
    seen_local: set[Path] = set()
    third_party: set[str] = set()
    queue = [ROOT / "run_server.py", *sorted((ROOT / "server").glob("*.py"))]
    while queue:
        path = queue.pop()
        if path in seen_local or not path.is_file():
            continue
        seen_local.add(path)
        for module in _module_level_imports(path):
            top = module.split(".")[0]
            if top in LOCAL_PACKAGES:
                queue.append(ROOT / (module.replace(".", "/") + ".py"))
                queue.append(ROOT / module.replace(".", "/") / "__init__.py")
            elif top not in sys.stdlib_module_names:
                third_party.add(top)
    return third_party


def test_runtime_requirements_cover_every_server_import() -> None:
    distributions = importlib.metadata.packages_distributions()
    runtime = {
        canonicalize_name(Requirement(line).name)
        for line in _requirements(DEPLOY / "requirements-runtime.txt")
    }
    imported = _server_import_closure()
    assert {"aiohttp", "aiortc", "av", "cv2", "numpy"} <= imported
    missing = {
        module: distributions.get(module)
        for module in imported
        if not {canonicalize_name(name) for name in distributions.get(module, [module])} & runtime
    }
    assert missing == {}, (
        "the image would lack these (module: distributions); add them to requirements-runtime.txt"
    )


# --- Dockerfile ---------------------------------------------------------------------------------------


def test_dockerfile_runs_the_server_as_non_root_with_a_healthcheck() -> None:
    instructions = _dockerfile_instructions()
    by_keyword: dict[str, list[str]] = {}
    for keyword, arguments in instructions:
        by_keyword.setdefault(keyword, []).append(arguments)
    assert by_keyword["FROM"] == ["python:3.11-slim"]
    assert json.loads(by_keyword["ENTRYPOINT"][-1]) == ["python", "run_server.py"]
    assert json.loads(by_keyword["CMD"][-1]) == []
    assert by_keyword["USER"][-1] not in ("root", "0")
    assert "deploy/healthcheck.py" in by_keyword["HEALTHCHECK"][-1]
    assert by_keyword["EXPOSE"] == [f"{_dockerfile_env()['MASKCAM_PORT']}/tcp"]
    assert any(
        "requirements-runtime.txt" in run and "constraints-runtime.txt" in run for run in by_keyword["RUN"]
    )


def test_dockerfile_copies_exist_and_pass_dockerignore() -> None:
    sources = []
    for keyword, arguments in _dockerfile_instructions():
        if keyword == "COPY":
            parts = [part for part in arguments.split() if not part.startswith("--")]
            sources.extend(parts[:-1])
    assert "run_server.py" in sources
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*", ".dockerignore must start from nothing"
    for source in sources:
        assert source.rstrip("/") in included, f"{source} is copied but excluded by .dockerignore"
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_dockerfile_environment_is_accepted_by_the_server() -> None:
    env = _dockerfile_env()
    maskcam = {name: value for name, value in env.items() if name.startswith("MASKCAM_")}
    assert maskcam.keys() <= help_env_names()
    config = parse_config([], environ=maskcam)
    assert config.host == "0.0.0.0"
    assert config.log_format == "json"
    result = subprocess.run(
        [sys.executable, "run_server.py", "--help"],
        cwd=ROOT,
        env={**os.environ, **maskcam},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- docker-compose.yml -------------------------------------------------------------------------------


def test_compose_uses_real_settings_and_they_parse() -> None:
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    compose = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    assert (
        set(re.findall(r"\bMASKCAM_(?:[A-Z]+_)*[A-Z]+\b", compose)) - {"MASKCAM_LAN_IP"} <= help_env_names()
    )
    assert set(re.findall(r"(?<![\w-])--([a-z][a-z-]+)", compose)) <= {
        "user",
        "external-ip",
        "allowed-peer-ip",
    }
    raw = _compose_service_environment("maskcam")
    variables = _example_env() | {"MASKCAM_TOKEN": "t0ken", "TURN_PASSWORD": "pa55"}
    environment = {name: _interpolate(value, variables) for name, value in raw.items()}
    config = parse_config([], environ=environment)
    assert config.https
    assert config.host == "0.0.0.0"
    assert config.token == "t0ken"
    assert [(server.url, server.username, server.credential) for server in config.ice_servers] == [
        ("turn:turn.example.org:3478?transport=udp", "maskcam", "pa55"),
        ("turn:turn.example.org:3478?transport=tcp", "maskcam", "pa55"),
    ]


def test_compose_refuses_to_start_without_secrets() -> None:
    raw = _compose_service_environment("maskcam")
    with pytest.raises(KeyError, match="MASKCAM_TOKEN"):
        _interpolate(raw["MASKCAM_TOKEN"], _example_env())


def test_compose_mounts_the_turn_config_that_exists() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "./deploy/turnserver.conf:/etc/coturn/turnserver.conf:ro" in compose
    conf = (DEPLOY / "turnserver.conf").read_text()
    assert "lt-cred-mech" in conf
    assert "denied-peer-ip=192.168.0.0-192.168.255.255" in conf
    assert (DEPLOY / ".gitignore").read_text().split() == ["maskcam.env"]


# --- health check ---------------------------------------------------------------------------------------


def test_healthcheck_url_follows_the_server_settings() -> None:
    assert healthcheck.healthz_url({}) == "http://127.0.0.1:8080/healthz"
    assert (
        healthcheck.healthz_url({"MASKCAM_HOST": "0.0.0.0", "MASKCAM_PORT": "8443", "MASKCAM_HTTPS": "yes"})
        == "https://127.0.0.1:8443/healthz"
    )
    assert healthcheck.healthz_url({"MASKCAM_HOST": "::1"}) == "http://[::1]:8080/healthz"


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[TestServer, dict[str, int]]]:
    status = {"code": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "x"}, status=status["code"])

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, status
    await server.close()


async def test_healthcheck_reports_the_servers_answer(
    health_server: tuple[TestServer, dict[str, int]],
) -> None:
    server, status = health_server
    url = healthcheck.healthz_url({"MASKCAM_PORT": str(server.port)})
    assert await asyncio.to_thread(healthcheck.check, url)
    status["code"] = 503
    assert not await asyncio.to_thread(healthcheck.check, url)
    assert not await asyncio.to_thread(healthcheck.check, "http://127.0.0.1:1/healthz", 1.0)


# --- kiosk ------------------------------------------------------------------------------------------------


def test_kiosk_launcher_passes_the_kiosk_flags_and_url(tmp_path: Path) -> None:
    fake_browser = tmp_path / "browser"
    fake_browser.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake_browser.chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MASKCAM_KIOSK_BROWSER": str(fake_browser),
        "MASKCAM_KIOSK_URL": "https://192.168.1.20:8443/kiosk?token=abc",
        "MASKCAM_KIOSK_SPKI": "c2hhMjU2LWhhc2g=",
        "MASKCAM_KIOSK_WAIT": "0",
    }
    result = subprocess.run(
        [str(DEPLOY / "kiosk" / "maskcam-kiosk")], env=env, capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 0, result.stderr
    arguments = result.stdout.splitlines()
    for flag in ("--kiosk", "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream"):
        assert flag in arguments
    assert "--ignore-certificate-errors-spki-list=c2hhMjU2LWhhc2g=" in arguments
    assert any(argument.startswith("--user-data-dir=") for argument in arguments)
    assert arguments[-1] == env["MASKCAM_KIOSK_URL"]
    del env["MASKCAM_KIOSK_URL"]
    settings = tmp_path / ".config" / "maskcam-kiosk.env"
    settings.parent.mkdir()
    settings.write_text((DEPLOY / "kiosk" / "maskcam-kiosk.env.example").read_text())
    from_file = subprocess.run(
        [str(DEPLOY / "kiosk" / "maskcam-kiosk")], env=env, capture_output=True, text=True, timeout=10
    )
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.splitlines()[-1] == "http://localhost:8080/kiosk"
    settings.unlink()
    missing = subprocess.run(
        [str(DEPLOY / "kiosk" / "maskcam-kiosk")], env=env, capture_output=True, text=True, timeout=10
    )
    assert missing.returncode != 0
    assert "MASKCAM_KIOSK_URL" in missing.stderr


def test_kiosk_launcher_opens_the_page_only_once_the_server_is_healthy(tmp_path: Path) -> None:
    """Chromium's own error page never retries, so the launcher waits for /healthz first."""
    import http.server
    import threading

    if shutil.which("curl") is None:
        pytest.skip("the launcher's wait uses curl, which is not installed")
    checks: list[int] = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            checks.append(len(checks))
            status = 200 if self.path == "/healthz" and len(checks) >= 3 else 503
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake_browser = tmp_path / "browser"
    fake_browser.write_text('#!/bin/sh\necho "$@" > "$0.args"\n')
    fake_browser.chmod(0o755)
    url = f"http://127.0.0.1:{server.server_address[1]}/kiosk?token=abc"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MASKCAM_KIOSK_BROWSER": str(fake_browser),
        "MASKCAM_KIOSK_URL": url,
        "MASKCAM_KIOSK_WAIT_INTERVAL": "0.2",
    }
    try:
        result = subprocess.run(
            [str(DEPLOY / "kiosk" / "maskcam-kiosk")], env=env, capture_output=True, text=True, timeout=20
        )
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert len(checks) == 3
    assert (tmp_path / "browser.args").read_text().split()[-1] == url


# --- docs -------------------------------------------------------------------------------------------------


def test_every_flag_and_variable_is_documented_in_deploy_md() -> None:
    doc = (ROOT / "docs" / "DEPLOY.md").read_text()
    flags = help_flags()
    assert {"--host", "--port", "--https", "--token", "--record"} <= flags
    assert sorted(flag for flag in flags if f"`{flag}" not in doc) == []
    assert sorted(name for name in help_env_names() if name not in doc) == []


def test_deploy_md_flags_table_lists_only_real_flags() -> None:
    doc = (ROOT / "docs" / "DEPLOY.md").read_text()
    table_flags = set(re.findall(r"^\| `(--[a-z-]+)", doc, flags=re.MULTILINE))
    assert table_flags
    assert sorted(table_flags - help_flags()) == []


def test_deployments_use_the_malloc_setting_the_cycle_test_measured() -> None:
    from server.memory import MMAP_THRESHOLD_BYTES

    assert _dockerfile_env()["MALLOC_MMAP_THRESHOLD_"] == str(MMAP_THRESHOLD_BYTES)
    unit = (DEPLOY / "maskcam.service").read_text()
    assert f"Environment=MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD_BYTES}" in unit


@pytest.mark.slow
def test_dockerfile_command_serves_https_that_the_healthcheck_accepts(tmp_path: Path) -> None:
    """The image's ENTRYPOINT + CMD with its ENV (on loopback here), over --https, probed as Docker would."""
    from tests.browser_helpers import free_port
    from tests.vision_helpers import COMMITTED_ONNX, write_colour_classifier

    by_keyword = dict(_dockerfile_instructions())
    command = json.loads(by_keyword["ENTRYPOINT"]) + json.loads(by_keyword["CMD"])
    assert command[0] == "python"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MASKCAM_")}
    environment.update(_dockerfile_env())
    environment.update(
        {
            "MASKCAM_HOST": "127.0.0.1",
            "MASKCAM_PORT": str(free_port()),
            "MASKCAM_HTTPS": "1",
            "MASKCAM_CERT": str(tmp_path / "server.crt"),
            "MASKCAM_KEY": str(tmp_path / "server.key"),
            "MASKCAM_HISTORY": str(tmp_path / "history.sqlite3"),
        }
    )
    if not COMMITTED_ONNX.is_file():
        environment["MASKCAM_CLASSIFIER"] = str(write_colour_classifier(tmp_path))
    probe = [sys.executable, "deploy/healthcheck.py"]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, *command[1:]], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while (
            subprocess.run(probe, cwd=ROOT, env=environment, capture_output=True, timeout=30).returncode != 0
        ):
            assert server.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.5)
        assert (tmp_path / "server.crt").is_file()
        log_lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
        assert log_lines and all(json.loads(line)["level"] for line in log_lines), "MASKCAM_LOG_FORMAT=json"
        server.send_signal(signal.SIGTERM)  # Docker's STOPSIGNAL
        assert server.wait(timeout=10) == 0
        assert (
            subprocess.run(probe, cwd=ROOT, env=environment, capture_output=True, timeout=30).returncode == 1
        )
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# --- TURN (coturn from Debian, when installed) ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("turnserver") is None, reason="needs coturn (apt-get install coturn)")
async def test_turn_config_relays_a_relay_only_camera_to_the_server(tmp_path: Path) -> None:
    """deploy/turnserver.conf with the options docker-compose.yml adds: a camera that may only use the
    relay (as one behind a strict NAT) gets its annotated video back; a wrong password gets nothing."""
    import aiohttp
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    from run_server import lan_addresses
    from scripts.cycle_test import wait_healthy
    from server.app import create_app
    from server.settings import IceServer, ServerConfig
    from tests.browser_helpers import free_port
    from tests.media_helpers import FakeCameraTrack, SlowAnalyser, blank_frame, serve_app

    addresses = lan_addresses()
    if not addresses:
        pytest.skip("no non-loopback IPv4 address: aiortc gathers no candidate a relay could reach")
    address, port = addresses[0], free_port()
    turn = subprocess.Popen(
        [
            "turnserver",
            "-c",
            str(DEPLOY / "turnserver.conf"),
            "--user=maskcam:pa55",
            f"--external-ip={address}",
            f"--allowed-peer-ip={address}",
            f"--listening-port={port}",
            f"--pidfile={tmp_path / 'turn.pid'}",
            f"--userdb={tmp_path / 'turndb'}",
        ],
        stdout=(tmp_path / "turn.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"turn:{address}:{port}"

    async def frames_through_relay(base_url: str, http: aiohttp.ClientSession, password: str) -> int:
        configuration = RTCConfiguration(
            iceServers=[RTCIceServer(urls=url, username="maskcam", credential=password)],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
        pc = RTCPeerConnection(configuration)
        received: list[object] = []
        readers: list[asyncio.Task[None]] = []

        async def read(track: Any) -> None:
            with contextlib.suppress(Exception):
                while True:
                    received.append(await track.recv())

        pc.on("track", lambda track: readers.append(asyncio.ensure_future(read(track))))
        pc.addTrack(FakeCameraTrack([blank_frame()]))
        pc.createDataChannel("detections")
        try:
            await pc.setLocalDescription(await pc.createOffer())
            offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
            async with http.post(f"{base_url}/offer", json=offer) as response:
                answer = await response.json()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
            deadline = time.monotonic() + 15.0
            while len(received) < 10 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return len(received)
        finally:
            await pc.close()
            for reader in readers:
                reader.cancel()

    try:
        time.sleep(1.0)
        assert turn.poll() is None, (tmp_path / "turn.log").read_text()[-2000:]
        config = replace(
            ServerConfig(), offers_per_minute=0, ice_servers=(IceServer(url, "maskcam", "pa55"),)
        )
        app = create_app(config, source_factory=lambda _: SlowAnalyser(0.005))
        async with serve_app(app) as base_url, aiohttp.ClientSession() as http:
            await wait_healthy(http, base_url)
            assert await frames_through_relay(base_url, http, "pa55") >= 10
            assert await frames_through_relay(base_url, http, "wrong") == 0
    finally:
        turn.terminate()
        turn.wait(timeout=10)


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="needs docker-compose (apt-get install docker-compose)"
)
def test_docker_compose_validates_the_file(tmp_path: Path) -> None:
    """docker-compose's own schema check and interpolation (no engine needed for `config`)."""
    filled = tmp_path / "maskcam.env"
    filled.write_text(
        (DEPLOY / "maskcam.env.example")
        .read_text()
        .replace("MASKCAM_TOKEN=\n", "MASKCAM_TOKEN=t0ken\n")
        .replace("TURN_PASSWORD=\n", "TURN_PASSWORD=pa55\n")
    )
    command = ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "--env-file"]
    result = subprocess.run([*command, str(filled), "config"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "MASKCAM_ICE_CREDENTIAL: pa55" in result.stdout
    assert "--user=maskcam:pa55" in result.stdout
    unfilled = subprocess.run(
        [*command, str(DEPLOY / "maskcam.env.example"), "config"], capture_output=True, text=True, timeout=60
    )
    assert unfilled.returncode != 0
    assert "set MASKCAM_TOKEN" in unfilled.stderr

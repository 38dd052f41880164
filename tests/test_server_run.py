"""run_server.py as an operator meets it: clear exit on a missing model, URLs, HTTPS, logs, SIGTERM."""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.analysis.models import load_models
from server.logs import JsonFormatter, session_logger
from server.memory import use_fixed_mmap_threshold
from server.settings import PROJECT_ROOT, ServerConfig
from server.tls import ensure_self_signed, server_ssl_context
from vision.pipeline import MaskDetectionPipeline
from vision.stream import StreamAnalyser

RUN_SERVER = PROJECT_ROOT / "run_server.py"


def test_missing_classifier_is_a_clear_error_with_exit_code_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    result = subprocess.run(
        [sys.executable, str(RUN_SERVER), f"--classifier={missing}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2
    assert f"classifier model not found: {missing}" in result.stderr
    assert "Traceback" not in result.stderr


def test_self_signed_certificate_is_created_once_and_reused(tmp_path: Path) -> None:
    cert, key = tmp_path / "certs" / "server.crt", tmp_path / "certs" / "server.key"
    created = ensure_self_signed(cert, key, ["192.168.1.20"])
    assert created is not None and created.startswith("created")
    first = cert.read_bytes()
    assert ensure_self_signed(cert, key, ["192.168.1.20"]) is None
    assert cert.read_bytes() == first
    assert key.stat().st_mode & 0o077 == 0, "the private key is readable by others"
    assert isinstance(server_ssl_context(cert, key), ssl.SSLContext)
    names = x509.load_pem_x509_certificate(first).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "localhost" in names.value.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)].count("192.168.1.20") == 1


def spki(certificate: bytes) -> bytes:
    return (
        x509.load_pem_x509_certificate(certificate)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def reissue(cert: Path, key: Path, common_name: str, days_left: float) -> None:
    """Replace the certificate by one with the same key that expires in `days_left` days."""
    private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    old = x509.load_pem_x509_certificate(cert.read_bytes())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=800))
        .not_valid_after(now + datetime.timedelta(days=days_left))
        .add_extension(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
    )
    cert.write_bytes(builder.sign(private_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def test_own_certificate_is_renewed_with_the_same_key_and_an_operators_is_left_alone(tmp_path: Path) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    ensure_self_signed(cert, key, ["192.168.1.20"])
    pinned = spki(cert.read_bytes())

    # Expiring within 30 days: re-issued for another 825 days, same key (a kiosk's SPKI pin still holds).
    reissue(cert, key, f"maskcam {socket.gethostname()}", days_left=10)
    renewed = ensure_self_signed(cert, key, ["192.168.1.20"])
    assert renewed is not None and "expires on" in renewed
    expires = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    assert expires > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=800)
    assert spki(cert.read_bytes()) == pinned
    assert ensure_self_signed(cert, key, ["192.168.1.20"]) is None

    # The machine got another LAN address: re-issued so that phones can use it.
    moved = ensure_self_signed(cert, key, ["192.168.1.20", "10.0.0.7"])
    assert moved is not None and "new address 10.0.0.7" in moved
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert {"10.0.0.7", "192.168.1.20"} <= {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)}
    assert spki(cert.read_bytes()) == pinned

    # An operator's certificate (another subject) is never replaced, even when it is about to expire.
    reissue(cert, key, "entrance.example.org", days_left=3)
    before = cert.read_bytes()
    assert ensure_self_signed(cert, key, ["192.168.1.99"]) is None
    assert cert.read_bytes() == before


def test_json_logs_carry_the_session_id(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("test.session")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        session_logger("test.session", "abc123").info("connection state", extra={"state": "connected"})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(capsys.readouterr().err.strip())
    assert entry["session"] == "abc123" and entry["state"] == "connected"
    assert entry["message"] == "connection state" and entry["level"] == "INFO"


@pytest.fixture(scope="module")
def classifier_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained classifier, or (until it is committed) a randomly initialised one for plumbing."""
    return trained_or_random_classifier(tmp_path_factory.mktemp("classifier"))


def trained_or_random_classifier(tmp_path: Path) -> Path:
    trained = ServerConfig().classifier
    if trained.is_file():
        return trained
    torch = pytest.importorskip("torch")
    from training.export import export_onnx
    from vision.classifier import ClassifierInfo
    from vision.labels import LABELS
    from vision.networks import build_network

    torch.manual_seed(0)
    path = tmp_path / "random_classifier.onnx"
    export_onnx(build_network("mobilenet_v2", 3), ClassifierInfo("mobilenet_v2", LABELS, 128, 0.15), path)
    return path


@pytest.mark.slow
def test_https_server_prints_urls_serves_and_stops_within_5_s_of_sigterm(
    tmp_path: Path, classifier_path: Path
) -> None:
    env = {**os.environ, "MASKCAM_LOG_FORMAT": "json", "MASKCAM_CLASSIFIER": str(classifier_path)}
    process = subprocess.Popen(
        [
            sys.executable,
            str(RUN_SERVER),
            "--host=0.0.0.0",
            "--port=0",
            "--https",
            f"--cert={tmp_path / 'tls.crt'}",
            f"--key={tmp_path / 'tls.key'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any("Stop with" in line for line in lines) and time.monotonic() < deadline:
            lines.append(process.stdout.readline())
        banner = "".join(lines)
        match = re.search(r"https://localhost:(\d+)/", banner)
        assert match, banner
        assert "/kiosk" in banner
        context = ssl.create_default_context(cafile=str(tmp_path / "tls.crt"))
        with urllib.request.urlopen(
            f"https://localhost:{match.group(1)}/healthz", context=context
        ) as response:
            assert json.loads(response.read())["status"] == "ok"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5.0
        assert process.stderr is not None
        log_lines = [json.loads(line) for line in process.stderr.read().splitlines() if line.startswith("{")]
        assert any(entry["message"].startswith("stopping") for entry in log_lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_detect_every_chooses_full_pipeline_or_a_face_follower_per_stream(classifier_path: Path) -> None:
    every_frame = load_models(ServerConfig(classifier=classifier_path, detect_every=1))
    shared = every_frame.open_stream()
    assert isinstance(shared, MaskDetectionPipeline)
    assert every_frame.open_stream() is shared, "every stream shares the full pipeline"
    streaming = load_models(ServerConfig(classifier=classifier_path, detect_every=4))
    first, second = streaming.open_stream(), streaming.open_stream()
    assert first is not second and isinstance(first, StreamAnalyser) and isinstance(second, StreamAnalyser)
    assert first.settings.detect_every == 4
    assert first.detector is second.detector is streaming.detector
    assert first.region_detector is second.region_detector


def test_fixed_mmap_threshold_unless_the_operator_set_one() -> None:
    assert use_fixed_mmap_threshold({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False
    assert use_fixed_mmap_threshold({}) is (platform.libc_ver()[0] == "glibc")

"""The Docker image, built from the repository and run for real with podman (tests/container_helpers.py).

Built once per test session on the `python:3.11-slim` stand-in, run with host networking as docs/DEPLOY.md
says, streamed one aiortc camera of real faces, stopped as `docker stop` would. Skipped where podman or
debootstrap is missing, unless MASKCAM_REQUIRE_DEPLOY=1 (.ci/run).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from tests.browser_helpers import free_port
from tests.container_helpers import (
    ULIMITS,
    BuiltImage,
    build_image,
    deploy_tool_missing,
    ensure_base_image,
    podman,
)
from tests.media_helpers import CameraClient, FakeCameraTrack, two_face_frame
from tests.test_server_loopback import inside, outline_colour
from vision.labels import LABEL_COLOURS_BGR

# The first test pays for the stand-in base (about 2 min, once per machine) and a cold build (about 1 min).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

IMAGE_USER_UID = 10001  # the Dockerfile's `useradd --uid`
STOP_GRACE_S = 10  # docker-compose.yml's stop_grace_period, and `podman stop`'s default
IMAGE_SIZE_LIMIT = 1_200_000_000  # 836 MB measured; a torch that slipped in would add several GB


@pytest.fixture(scope="session")
def image() -> BuiltImage:
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None:
            deploy_tool_missing(f"{tool} is not installed (.ci/run installs it)", os.environ)
    ensure_base_image()
    built = build_image()
    print(f"\nimage {built.tag}: {built.size_bytes / 1e6:.0f} MB, podman build took {built.seconds:.0f} s")
    return built


@pytest.fixture
def data_volume() -> Iterator[str]:
    """A named volume, as docker-compose.yml's maskcam-data: a new one takes the image's folder owner."""
    name = f"maskcam-test-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)


def test_image_is_slim_and_keeps_its_healthcheck(image: BuiltImage) -> None:
    assert image.size_bytes < IMAGE_SIZE_LIMIT, f"{image.size_bytes / 1e6:.0f} MB"
    assert list(image.healthcheck) == ["CMD", "python", "deploy/healthcheck.py"]
    [details] = json.loads(podman("image", "inspect", image.tag).stdout)
    assert details["Config"]["User"] == "maskcam"
    # Only the runtime closure: torch (several GB) and the training code stay out.
    listing = podman("run", "--rm", *ULIMITS, "--entrypoint", "sh", image.tag, "-c", "pip list; ls /app")
    packages = {line.split()[0].lower() for line in listing.stdout.splitlines() if line.strip()}
    assert {"aiortc", "onnxruntime", "opencv-python-headless", "psycopg"} <= packages
    assert not {"torch", "torchvision", "pytest"} & packages
    assert "training" not in packages and "run_server.py" in packages


async def wait_healthy(http: aiohttp.ClientSession, url: str, container: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = podman("inspect", "--format", "{{.State.Status}}", container).stdout.strip()
        if state != "running":
            logs = podman("logs", container)
            raise AssertionError(f"the container is {state}: {(logs.stdout + logs.stderr)[-3000:]}")
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"{url} not healthy after {timeout} s"
        await asyncio.sleep(1.0)


async def test_image_serves_a_camera_keeps_history_in_its_volume_and_stops_cleanly(
    image: BuiltImage, data_volume: str
) -> None:
    scene = two_face_frame()
    port = free_port()
    name = f"maskcam-test-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        *ULIMITS,
        # As deploy/kubernetes runs it: nothing writable but /tmp, /dev/shm and the data volume.
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs",
        "/tmp",
        "-e",
        f"MASKCAM_PORT={port}",
        "-e",
        "MASKCAM_HOST=127.0.0.1",
        "-v",
        f"{data_volume}:/app/data",
        image.tag,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, f"{base_url}/healthz", name, timeout=180)
            # The image's own HEALTHCHECK (kept by --format docker), run as Docker's timer would.
            assert podman("healthcheck", "run", name, check=False).returncode == 0
            client = CameraClient(FakeCameraTrack([scene.image], fps=30.0))
            try:
                await client.connect(http, base_url, location="Image test")
                await client.wait_for(lambda: len(client.messages) >= 8, 60.0, "8 detection messages")
                await client.wait_for(lambda: client.frames_received >= 30, 30.0, "30 video frames")
                frame = client.frames[-1].to_ndarray(format="bgr24")
                # `docker stop` with the camera still streaming, both faces in view: the two open
                # passages end with the session and are written before the server exits.
                started = time.monotonic()
                await asyncio.to_thread(
                    podman, "stop", "--time", str(STOP_GRACE_S), name, timeout=STOP_GRACE_S + 30
                )
                stop_seconds = time.monotonic() - started
            finally:
                await client.close()
        for message in client.messages[-3:]:
            labels = {
                "masked": [f["label"] for f in message["faces"] if inside(f["box"], scene.masked_region)],
                "unmasked": [f["label"] for f in message["faces"] if inside(f["box"], scene.unmasked_region)],
            }
            assert labels == {"masked": ["with_mask"], "unmasked": ["without_mask"]}, labels
        for face in client.messages[-1]["faces"]:  # the annotated video: outlines in the label's colour
            colour = np.array(LABEL_COLOURS_BGR[face["label"]], dtype=float)
            assert np.abs(outline_colour(frame, face["box"]) - colour).max() < 60
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        stopped = podman("logs", name)
        logs = stopped.stdout + stopped.stderr
    finally:
        podman("rm", "--force", name, check=False)
    print(f"\npodman stop took {stop_seconds:.1f} s")
    assert exit_code == "0", logs[-3000:]
    assert stop_seconds < STOP_GRACE_S - 2, "SIGTERM did not end the server within the grace period"
    messages = [json.loads(line)["message"] for line in logs.splitlines() if line.startswith("{")]
    assert any(message.startswith("stopping") for message in messages), logs[-3000:]

    mountpoint = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", data_volume).stdout.strip())
    history = mountpoint / "history.sqlite3"
    assert history.stat().st_uid == IMAGE_USER_UID
    with sqlite3.connect(history) as database:
        rows = database.execute("SELECT label FROM passages WHERE location = 'Image test'").fetchall()
    assert sorted(label for (label,) in rows) == ["with_mask", "without_mask"]

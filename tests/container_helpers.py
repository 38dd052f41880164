"""The project's Docker image, built and run with Debian's podman (no Docker engine, no image registry here).

`python:3.11-slim` cannot be pulled, so `ensure_base_image` makes a faithful stand-in once per machine and
keeps it in podman's storage for later runs: a Debian bookworm root (the release `python:3.11-slim` is
built on) from `debootstrap --variant=minbase` off the machine's own Debian mirror, imported, with a venv
on PATH so that `python` and `pip` mean what they mean in the real image. The Dockerfile is then built as
it is, with `--pull=never`.

What this machine needs and the real Docker does not (test-only; nothing of it is in the Dockerfile):
- `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024` on `podman build` and `podman run` (the sandbox
  refuses podman's defaults);
- the OCI runtime `runc` where the host has hybrid cgroups (crun refuses them: "cgroups in hybrid mode not
  supported"), chosen by `podman_command`;
- the host's CA bundle and pip configuration mounted into the build, without which pip cannot reach PyPI;
- `--format docker`: podman's default OCI format drops the HEALTHCHECK.

`.ci/run` installs podman, runc, debootstrap and nginx and sets `MASKCAM_REQUIRE_DEPLOY=1`: then a missing
tool fails the tests instead of skipping them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_ENV = "MASKCAM_REQUIRE_DEPLOY"
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
BASE_TAG = "docker.io/library/python:3.11-slim"
IMAGE_TAG = "localhost/maskcam:test"
DEBIAN_SUITE = "bookworm"
STANDIN_CONTAINERFILE = """\
FROM {root}
RUN python3 -m venv /opt/python
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
CMD ["python"]
"""


def deploy_tool_missing(message: str, environ: Mapping[str, str]) -> None:
    """Skip a test whose tool is absent, or fail it when `REQUIRE_ENV` is 1 (as in CI)."""
    if environ.get(REQUIRE_ENV, "").strip() == "1":
        pytest.fail(f"{message}, and {REQUIRE_ENV}=1 requires the deployment tests to run")
    pytest.skip(message)


def podman_command() -> list[str]:
    """`podman`, with `--runtime runc` when runc is installed (it works with hybrid and unified cgroups)."""
    return ["podman", "--runtime", "runc"] if shutil.which("runc") else ["podman"]


def podman(*arguments: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*podman_command(), *arguments], capture_output=True, text=True, timeout=timeout, check=check
    )


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The machine's own Debian mirror: the first `URIs:` (deb822) or `deb URL` line serving bookworm."""
    files = sorted(sources.glob("sources.list.d/*.sources")) + sorted(sources.glob("sources.list.d/*.list"))
    files += [sources / "sources.list"]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text()
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and DEBIAN_SUITE in suites[1].split():
                return uris[1]
        match = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{DEBIAN_SUITE}\s", text, re.MULTILINE)
        if match:
            return match[1]
    raise RuntimeError(f"no Debian {DEBIAN_SUITE} mirror in {sources}")


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def ensure_base_image() -> None:
    """The `python:3.11-slim` stand-in, made once (about 2 minutes) and reused while podman keeps it."""
    if image_exists(BASE_TAG):
        return
    root_tag = "localhost/maskcam-standin-root:" + DEBIAN_SUITE
    with tempfile.TemporaryDirectory(prefix="maskcam-standin-") as folder:
        rootfs, context = Path(folder) / "root", Path(folder) / "context"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                DEBIAN_SUITE,
                str(rootfs),
                debian_mirror(),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [*podman_command(), "import", "-", root_tag], stdin=tar.stdout, check=True, capture_output=True
        )
        assert tar.wait(timeout=60) == 0
        context.mkdir()
        (context / "Containerfile").write_text(STANDIN_CONTAINERFILE.format(root=root_tag))
        podman("build", "--pull=never", *ULIMITS, "-t", BASE_TAG, str(context), timeout=600)


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    seconds: float
    size_bytes: int
    healthcheck: Sequence[str]


def build_image(tag: str = IMAGE_TAG) -> BuiltImage:
    """`podman build` of the repository's Dockerfile as it is (layers cached by podman between runs)."""
    started = time.monotonic()
    result = podman(
        "build",
        "--format",
        "docker",
        "--pull=never",
        *ULIMITS,
        "-v",
        "/etc/ssl/certs:/etc/ssl/certs:ro",
        "-v",
        "/etc/pip.conf:/etc/pip.conf:ro",
        "--network",
        "host",
        "-t",
        tag,
        str(ROOT),
        timeout=1200,
        check=False,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"podman build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    [details] = json.loads(podman("image", "inspect", tag).stdout)
    healthcheck = details.get("Healthcheck") or {}  # absent when the format dropped it
    return BuiltImage(tag, seconds, int(details["Size"]), healthcheck.get("Test") or [])

"""A throwaway PostgreSQL cluster for the history tests: Debian's `postgresql` binaries (initdb + pg_ctl),
run as the unprivileged `postgres` user (or as the current one when it is not root) on a free port.

`.ci/run` installs the package; without the binaries the tests that need a server skip and say why,
unless `MASKCAM_REQUIRE_POSTGRES=1` (which `.ci/run` sets): then they fail, so that CI cannot pass with
the PostgreSQL half of the history tests silently skipped.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "maskcam"
REQUIRE_ENV = "MASKCAM_REQUIRE_POSTGRES"
POSTGRES_ROOT = Path("/usr/lib/postgresql")


def postgres_bin(root: Path = POSTGRES_ROOT) -> Path | None:
    """The folder of initdb and pg_ctl (Debian's newest version under `root`), or None when absent."""
    if not root.is_dir():
        return None
    versions = sorted((p for p in root.iterdir() if (p / "bin" / "initdb").is_file()), key=lambda p: p.name)
    return versions[-1] / "bin" if versions else None


def postgres_missing(environ: Mapping[str, str]) -> None:
    """For a test that needs the binaries and finds none: skip it, or fail it when `REQUIRE_ENV` is 1."""
    message = "PostgreSQL is not installed (Debian's postgresql package; .ci/run installs it)"
    if environ.get(REQUIRE_ENV, "").strip() == "1":
        pytest.fail(f"{message}, and {REQUIRE_ENV}=1 requires the PostgreSQL tests to run")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresCluster:
    """One cluster in a temporary folder; `url(db)` for SQLAlchemy, `stop()`/`start()` mid-test."""

    bin_dir: Path
    directory: Path
    port: int
    run_as: str | None

    def _run(self, command: Sequence[str], timeout: float = 60) -> None:
        if self.run_as is not None:
            command = ["su", self.run_as, "-s", "/bin/sh", "-c", shlex.join(command)]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        self._run(
            [str(self.bin_dir / "initdb"), "-D", str(self.directory / "data"), "-A", "trust", "-U", USER]
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-o",
                options,
                "-l",
                str(self.directory / "log"),
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop"]
        )

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self._run([str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name])
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"


def start_cluster() -> PostgresCluster:
    """initdb + pg_ctl start in a new temporary folder; raises RuntimeError when the binaries are absent."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    run_as = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="maskcam-pg-"))
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        os.chown(directory, user.pw_uid, user.pw_gid)
    cluster = PostgresCluster(bin_dir=bin_dir, directory=directory, port=free_port(), run_as=run_as)
    cluster.init()
    cluster.start()
    return cluster


def remove_cluster(cluster: PostgresCluster) -> None:
    with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by the test
        cluster.stop()
    shutil.rmtree(cluster.directory, ignore_errors=True)

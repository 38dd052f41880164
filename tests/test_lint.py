"""The code stays ruff- and mypy-clean (configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["vision", "server", "training", "bench", "scripts", "tests", "predict.py", "run_server.py"]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_changes_nothing() -> None:
    result = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_finds_nothing() -> None:
    result = run(sys.executable, "-m", "mypy", *PACKAGES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vulture_finds_no_dead_code() -> None:
    """Every name vulture takes for unused (60 % confidence) is dead, or named in vulture_whitelist.py."""
    paths = ["server", "vision", "bench", "scripts", "training", "predict.py", "run_server.py"]
    result = run(sys.executable, "-m", "vulture", *paths, "vulture_whitelist.py", "--min-confidence", "60")
    assert result.returncode == 0, result.stdout + result.stderr

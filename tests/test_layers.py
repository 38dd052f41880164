"""The server's rooms keep their layers (`.importlinter`): an upward import fails here, not in a review. So
do the tool folders: `scripts` may use `bench`'s measuring, `bench` never imports `scripts`."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[list[str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    lines = config["importlinter:contract:rooms"]["layers"].split("\n")
    return [[name.strip() for name in line.replace(":", "|").split("|")] for line in lines if line.strip()]


def test_the_layer_contract_holds() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_every_room_of_the_server_is_in_a_layer() -> None:
    """A new folder or module under server/ must be placed in the contract, or nothing checks it."""
    placed = {name for layer in _layers() for name in layer}
    server = ROOT / "server"
    found = {
        f"server.{path.name}"
        for path in server.iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
    }
    found |= {f"server.{path.stem}" for path in server.glob("*.py") if path.stem != "__init__"}
    assert found <= placed, f"not in .importlinter's layers: {sorted(found - placed)}"


def test_the_server_root_holds_at_most_twelve_modules() -> None:
    """The root is the web side; everything else lives in a room of its own."""
    modules = sorted(path.name for path in (ROOT / "server").glob("*.py"))
    assert len(modules) <= 12, modules


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The history importing the transport (as it once did for /api/live) is caught."""
    import shutil

    for package in ("server", "vision", "bench", "scripts"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    (tmp_path / "server" / "history" / "upward.py").write_text("from server.rtc import registry\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "server.history.upward -> server.rtc.registry" in result.stdout


def test_bench_importing_scripts_breaks_the_contract(tmp_path: Path) -> None:
    import shutil

    for package in ("server", "vision", "bench", "scripts"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    (tmp_path / "bench" / "loop.py").write_text("from scripts import resources\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "bench.loop -> scripts.resources" in result.stdout

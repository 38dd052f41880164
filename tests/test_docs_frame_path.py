"""docs/ARCHITECTURE.md stays true: every `module.Name` it mentions still exists, and the README links it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
# A dotted name in backticks that starts with a package of the project, e.g.
# `server.rtc.track.AnnotatedVideoTrack`.
NAME = re.compile(r"`((?:server|vision|training|bench)(?:\.\w+)+)`")


def mentioned_names() -> list[str]:
    return sorted(set(NAME.findall(ARCHITECTURE.read_text(encoding="utf-8"))))


def resolve(dotted: str) -> object:
    """The object a dotted name refers to: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(dotted)


def test_the_page_names_the_frame_path() -> None:
    names = mentioned_names()
    assert len(names) >= 30, names
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert "## How a frame travels" in text


@pytest.mark.parametrize("dotted", mentioned_names())
def test_every_name_on_the_page_exists(dotted: str) -> None:
    try:
        resolve(dotted)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"docs/ARCHITECTURE.md names {dotted}, which is gone: {exc}")


def test_the_readme_links_the_page() -> None:
    assert "(docs/ARCHITECTURE.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


# A millisecond figure ("0.5 ms", "42-106 ms") or a benchmark step ("step 27") in the product's code.
FIGURE = re.compile(r"\b\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)? ?ms\b|\bstep \d+\b")


def test_no_timing_figures_or_step_numbers_in_the_products_code() -> None:
    """Figures go stale in docstrings; they live in bench/RESULTS.md and models/MODEL_CARD.md."""
    files = [*sorted((ROOT / "server").rglob("*.py")), *sorted((ROOT / "vision").rglob("*.py"))]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if FIGURE.search(line)
    ]
    assert found == [], "\n".join(found)


def _server_modules() -> list[str]:
    return sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / "server").rglob("*.py") if path.name != "__init__.py"
    )


def test_every_module_of_the_server_has_its_room_on_the_page() -> None:
    """The rooms table of docs/ARCHITECTURE.md names every module under server/, subfolders included."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert "## Rooms" in text
    missing = [module for module in _server_modules() if f"`{module}`" not in text]
    assert missing == [], f"docs/ARCHITECTURE.md's rooms table lacks {missing}"


def test_the_readme_layout_names_each_room() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rooms = sorted(
        f"`server/{path.name}/`" for path in (ROOT / "server").iterdir() if (path / "__init__.py").exists()
    )
    assert rooms, "server/ has its rooms"
    assert [room for room in rooms if room not in readme] == []

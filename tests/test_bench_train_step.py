"""`bench.train_step`: both precisions really train a step on this CPU, and the table says so."""

from __future__ import annotations

import math

import pytest

from bench.train_step import main, seconds_per_step


def test_both_precisions_run_a_step_and_the_table_has_a_row_per_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for precision in ("fp32", "bf16"):
        seconds = seconds_per_step(32, precision, steps=1)
        assert math.isfinite(seconds) and seconds > 0
    assert main(["--sizes", "32,48", "--steps", "1"]) == 0
    rows = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| 32 |") or line.startswith("| 48 |")
    ]
    assert len(rows) == 2 and all(row.endswith("x |") for row in rows)

"""The benchmark's side-by-side detector timing: every detector, full frame and search region."""

from __future__ import annotations

from bench.detector_bench import detector_table, run_detector_bench
from tests.vision_helpers import SCENES_DIR, require_dir
from vision.detector_factory import DETECTOR_NAMES


def test_every_detector_is_timed_at_its_frame_and_region_input() -> None:
    require_dir(SCENES_DIR / "jolignier")
    results = run_detector_bench(images_per_dataset=1)
    assert sorted({r.detector for r in results}) == sorted(DETECTOR_NAMES)
    assert {r.input for r in results} >= {"480x360", "300x300", "region 256x256", "region 128x128"}
    for result in results:
        assert result.calls == 2 and 0 < result.median_ms <= result.p95_ms
        assert result.cost_vs_res10 is not None and result.cost_vs_res10 > 0
    reference = next(r for r in results if r.detector == "res10" and r.input == "300x300")
    assert reference.cost_vs_res10 == 1.0
    assert "| yunet | 480x360 |" in detector_table(results)

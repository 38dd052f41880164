"""bench.analysis_cost: the analysis alone, on the cheap cameras' clip, at a rate of the test's choosing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.analysis_cost import main, measure
from bench.frames import SCENES_DIR
from vision.classifier import ModelFileError
from vision.model_options import ModelSettings

pytestmark = pytest.mark.skipif(
    not (SCENES_DIR / "jolignier").is_dir(), reason=f"scene photos not found in {SCENES_DIR}"
)


def test_the_schedule_is_the_servers_at_the_rate_asked() -> None:
    # 2 cameras, 4 s of clip at 5 analysed frames/s: a full detection once 0.5 s of the benchmark's
    # clock have passed (every 3rd frame: 0.6 s; more at a cut of the clip), the flow in between.
    cost = measure(cameras=2, rate=5.0, seconds=4.0, allocator="heap")
    assert cost.frames == 40
    assert 2 * 7 <= cost.full_detections <= 2 * 10
    assert cost.flow_follows > 0 and cost.classifications > 0
    assert cost.cpu_ms_per_frame > 0 and cost.cores_needed == pytest.approx(
        10 * cost.cpu_ms_per_frame / 1000.0
    )


def test_at_one_frame_a_second_every_frame_is_a_full_detection(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cameras", "1", "--rate", "1", "--seconds", "3", "--json"]) == 0
    printed = capsys.readouterr().out
    assert '"full_detections": 3' in printed and '"flow_follows": 0' in printed


def test_another_classifier_file_is_the_one_measured(tmp_path: Path) -> None:
    # A file that is not a model must fail loudly: proof that --classifier reaches the analysers.
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"broken\.onnx"):
        measure(cameras=1, rate=1.0, seconds=1.0, allocator="heap", models=ModelSettings(classifier=broken))
    cost = measure(
        cameras=1,
        rate=1.0,
        seconds=1.0,
        allocator="heap",
        models=ModelSettings(classifier=Path("models/mask_classifier.onnx")),
    )
    assert cost.frames == 1 and cost.full_detections == 1

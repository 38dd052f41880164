"""`training.decision_study`: the prior correction and the averaging of views, on logits with a known
answer (the study itself reads ../shared/data and is a measurement, not a test)."""

from __future__ import annotations

import numpy as np

from training.decision_study import CollectedLogits, prior_offsets, scaled_box, verdicts


def test_prior_offsets_undo_the_sampling_prior_by_its_power() -> None:
    counts = [400, 100, 25]
    # Trained at natural frequencies (power 0): nothing to undo.
    assert np.allclose(prior_offsets(counts, 0.0), 0.0)
    # Only differences matter. Trained on balanced draws (power 1), the whole log-prior comes back; at
    # 0.5 (square-root sampling, the committed model's) half of it.
    for power in (1.0, 0.5):
        offsets = prior_offsets(counts, power)
        assert np.allclose(offsets - offsets[0], power * np.log([1.0, 0.25, 25 / 400]))
    # The corrected posterior is the natural one: sampling prior x exp(offset) ~ count.
    sampled = np.asarray(counts, dtype=float) ** (1 - 0.3)
    corrected = sampled * np.exp(prior_offsets(counts, 0.3))
    assert np.allclose(corrected / corrected.sum(), np.asarray(counts) / sum(counts))


def test_verdicts_average_every_view_and_follow_the_offsets() -> None:
    # One face; the as-is view says class 2 clearly, the mirrored view says class 0 a little less.
    logits = np.zeros((1, 3, 2, 3))
    logits[0, :, 0] = [0.0, 0.0, 3.0]
    logits[0, :, 1] = [2.5, 0.0, 0.0]
    collected = CollectedLogits("one face", logits, np.array([0]))
    assert verdicts(collected, 1, np.zeros(3)).tolist() == [2]
    assert verdicts(collected, 1, np.array([0.0, 0.0, -1.0])).tolist() == [0]
    # The scale views are the same here, so averaging over them changes nothing.
    assert verdicts(collected, 3, np.zeros(3)).tolist() == [2]


def test_scaled_box_keeps_the_centre() -> None:
    assert scaled_box((10.0, 20.0, 30.0, 60.0), 0.5) == (15.0, 30.0, 25.0, 50.0)

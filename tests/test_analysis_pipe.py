"""The analysis process's pipe carries typed, frozen messages that survive pickling unchanged."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from server.analysis.pipe import Analysed, AnalyseFrame, AnalysisFailed, Ready, StartFailed
from vision.pipeline import Detection

FACE = Detection(box=(1, 2, 30, 40), label="with_mask", score=0.9, face_confidence=0.8)
MESSAGES = [
    Ready(),
    StartFailed("classifier model not found: x.onnx"),
    AnalyseFrame(stream_id=3, shape=(480, 640, 3), buffer_name="psm_1", forgotten=(1, 2)),
    AnalyseFrame(stream_id=0, shape=(8, 8), buffer_name="psm_1"),
    Analysed((FACE,)),
    AnalysisFailed("ValueError: bad frame"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda message: type(message).__name__)
def test_messages_are_frozen_and_pickle_unchanged(message: object) -> None:
    assert dataclasses.is_dataclass(message)
    assert pickle.loads(pickle.dumps(message)) == message
    fields = dataclasses.fields(message)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(message, fields[0].name, None)

"""The server, predict.py and the evaluation take the same model flags, with the same defaults."""

from __future__ import annotations

import argparse

import pytest

import predict
from server.analysis.models import load_models
from server.settings import ServerConfig, parse_config
from training import evaluate
from vision.detector_factory import DEFAULT_DETECTOR, DETECTOR_NAMES, build_detector
from vision.model_options import DEFAULT_CLASSIFIER, confidence_argument, detector_spec, parse_detector_size


def test_detector_size_spellings() -> None:
    assert parse_detector_size("300") == (300, 300)
    assert parse_detector_size("400X300") == (400, 300)
    for bad in ("", "x", "300x", "1x2x3", "31", "2049x300", "big"):
        with pytest.raises(ValueError, match="detector size"):
            parse_detector_size(bad)


def test_confidence_is_strictly_between_0_and_1() -> None:
    assert confidence_argument("0.3") == 0.3
    for bad in ("0", "1", "-0.1", "1.5", "half"):
        with pytest.raises(argparse.ArgumentTypeError):
            confidence_argument(bad)


def test_every_entry_point_has_the_same_defaults() -> None:
    predicted = predict.build_parser().parse_args(["photo.jpg", "--out", "out"])
    evaluated = evaluate.build_parser().parse_args(["--faces", "faces", "--json", "r.json"])
    served = parse_config([], environ={})
    for args in (predicted, evaluated):
        # None: the detector's own size and threshold (vision.detector_factory), the same everywhere.
        assert (args.classifier, args.detector, args.detector_size, args.confidence) == (
            DEFAULT_CLASSIFIER,
            DEFAULT_DETECTOR,
            None,
            None,
        )
        assert args.prototxt is None and args.caffemodel is None
        assert detector_spec(args) == served.detector_spec
    for config in (served, ServerConfig()):
        assert (config.classifier, config.detector, config.detector_size, config.confidence) == (
            DEFAULT_CLASSIFIER,
            DEFAULT_DETECTOR,
            None,
            None,
        )


def test_entry_points_accept_the_same_spellings_and_refuse_bad_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = ["--detector-size", "400x300", "--confidence", "0.3"]
    assert predict.build_parser().parse_args(["a.jpg", "--out", "o", *flags]).detector_size == (400, 300)
    assert evaluate.build_parser().parse_args(["--faces", "f", "--json", "j", *flags]).confidence == 0.3
    served = parse_config(flags, environ={})
    assert (served.detector_size, served.confidence) == ((400, 300), 0.3)
    with pytest.raises(SystemExit):
        predict.build_parser().parse_args(["a.jpg", "--out", "o", "--detector-size", "10"])
    assert "sides in 32..2048" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(["--detector-size", "10"], environ={})
    assert "sides in 32..2048" in capsys.readouterr().err
    for parse in (
        lambda: predict.build_parser().parse_args(["a.jpg", "--out", "o", "--detector", "haar"]),
        lambda: parse_config(["--detector", "haar"], environ={}),
    ):
        with pytest.raises(SystemExit):
            parse()
        assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config([], environ={"MASKCAM_DETECTOR": "haar"})


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_detector_flag_chooses_the_model_in_every_entry_point(name: str) -> None:
    predicted = predict.build_parser().parse_args(["a.jpg", "--out", "o", "--detector", name])
    evaluated = evaluate.build_parser().parse_args(["--faces", "f", "--json", "j", "--detector", name])
    for spec in (detector_spec(predicted), detector_spec(evaluated)):
        assert build_detector(spec).name == name
    from_flag = parse_config(["--detector", name], environ={})
    from_environment = parse_config([], environ={"MASKCAM_DETECTOR": name})
    assert from_flag.detector_spec == from_environment.detector_spec
    # The server builds that model, for full frames and for the stream analyser's search regions.
    models = load_models(from_flag)
    assert models.detector.name == name
    assert models.region_detector is not None and models.region_detector.name == name


def test_model_flags_round_trip_through_as_flags() -> None:
    """The benchmark hands its model settings to the server as flags: they must come back the same."""
    import argparse
    from pathlib import Path

    from vision.model_options import ModelSettings, add_model_arguments, model_settings
    from vision.settings_fields import as_flags

    chosen = ModelSettings(
        classifier=Path("elsewhere/model.onnx"), detector="res10", detector_size=(400, 300), confidence=0.7
    )
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    assert model_settings(parser.parse_args(as_flags(chosen))) == chosen
    assert as_flags(ModelSettings()) == []

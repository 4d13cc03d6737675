"""Every API error, raised where TF-TRT raises it, naming the parameter and the fix."""

from __future__ import annotations

import errno
import pathlib
import subprocess

import numpy as np
import pytest
import tensorflow as tf

import converter as trt
from converter.savedmodel.synthetic import batch_input_fn


def test_tf_trt_names_are_aliases() -> None:
    assert trt.TrtGraphConverterV2 is trt.Converter
    assert trt.TrtConversionParams is trt.ConversionParams
    assert trt.TrtPrecisionMode.supported_precision_modes()[:3] == ["FP32", "FP16", "INT8"]
    defaults = trt.DEFAULT_TRT_CONVERSION_PARAMS
    assert (defaults.precision_mode, defaults.max_workspace_size_bytes,
            defaults.minimum_segment_size, defaults.maximum_cached_engines,
            defaults.use_calibration, defaults.allow_build_at_runtime, defaults.backend) == (
        "FP32", 1 << 30, 3, 1, True, True, "auto")


@pytest.mark.parametrize(("changes", "names"), [
    ({"precision_mode": "FP8"}, "precision_mode"),
    ({"minimum_segment_size": 0}, "minimum_segment_size"),
    ({"minimum_segment_size": -2}, "minimum_segment_size"),
    ({"maximum_cached_engines": 0}, "maximum_cached_engines"),
    ({"max_workspace_size_bytes": 0}, "max_workspace_size_bytes"),
    ({"backend": "onnx"}, "backend"),
])
def test_invalid_parameters_are_value_errors(changes: dict[str, object], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        trt.ConversionParams(**changes)  # type: ignore[arg-type]


def test_minus_one_segment_size_converts_nothing(mlp_dir: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir, conversion_params=trt.ConversionParams(
        minimum_segment_size=-1))
    converter.convert()
    assert converter.report().nothing_to_compile


def test_tensorrt_backend_fails_at_once_naming_version_and_ways_out(mlp_dir: pathlib.Path) -> None:
    with pytest.raises(RuntimeError) as raised:
        trt.Converter(mlp_dir, conversion_params=trt.ConversionParams(backend="tensorrt"))
    message = str(raised.value)
    assert tf.__version__ in message
    assert "backend='xla'" in message and "2.17" in message
    assert isinstance(raised.value, trt.BackendUnavailableError)


def test_build_without_input_fn_and_before_convert(mlp_dir: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir)
    with pytest.raises(RuntimeError, match="before convert"):
        converter.build(batch_input_fn(converter.input_specs, [1]))
    converter.convert()
    with pytest.raises(RuntimeError, match="input_fn"):
        converter.build(None)  # type: ignore[arg-type]


def test_second_build_is_not_implemented(mlp_dir: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir)
    converter.convert()
    converter.build(batch_input_fn(converter.input_specs, [2]))
    with pytest.raises(NotImplementedError, match="one build"):
        converter.build(batch_input_fn(converter.input_specs, [4]))


def test_calibration_input_fn_is_refused_outside_int8(mlp_dir: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir)
    with pytest.raises(ValueError, match="calibration_input_fn"):
        converter.convert(calibration_input_fn=batch_input_fn(converter.input_specs, [1]))


def test_save_before_convert(mlp_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    with pytest.raises(RuntimeError, match="convert"):
        trt.Converter(mlp_dir).save(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_a_saved_model(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        trt.Converter(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a SavedModel"):
        trt.Converter(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"\x08\x01garbage")
    with pytest.raises(trt.SavedModelError, match="broken"):
        trt.Converter(broken)


def test_unknown_tags_and_signature_list_what_exists(mlp_dir: pathlib.Path) -> None:
    with pytest.raises(ValueError, match=r"tag sets are \[\['serve'\]\]"):
        trt.Converter(mlp_dir, input_saved_model_tags=["train"])
    with pytest.raises(ValueError, match="serving_default") as raised:
        trt.Converter(mlp_dir, input_saved_model_signature_key="predict_v2")
    assert "input_saved_model_signature_key" in str(raised.value)


@pytest.mark.parametrize(("item", "message"), [
    ((np.ones((2, 16), np.float32), np.ones((2, 16), np.float32)), "yielded 2 tensor"),
    ({"y": np.ones((2, 16), np.float32)}, r"yielded inputs \['y'\]"),
    ((np.ones((2, 16), np.float64),), "dtype float64.*expects float32"),
    ((np.ones((2, 4, 16), np.float32),), "rank 3.*expects rank 2"),
    ((np.ones((2, 15), np.float32),), "shape \\(2, 15\\)"),
])
def test_input_fn_mismatches_name_the_input(mlp_dir: pathlib.Path, item: object,
                                            message: str) -> None:
    converter = trt.Converter(mlp_dir)
    converter.convert()
    with pytest.raises(trt.InputFnError, match=message):
        converter.build(lambda: iter([item]))


def test_input_fn_that_yields_nothing(mlp_dir: pathlib.Path) -> None:
    converter = trt.Converter(mlp_dir)
    converter.convert()
    with pytest.raises(ValueError, match="yielded nothing"):
        converter.build(lambda: iter([]))


def test_existing_output_is_never_overwritten(mlp_dir: pathlib.Path,
                                              tmp_path: pathlib.Path) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    converter = trt.Converter(mlp_dir)
    converter.convert()
    with pytest.raises(FileExistsError, match="never overwrites"):
        converter.save(output)
    assert [p.name for p in output.iterdir()] == ["keep.txt"]


def test_enospc_while_saving_leaves_nothing(mlp_dir: pathlib.Path,
                                             tmp_path: pathlib.Path) -> None:
    """A real full disk (a 16 KiB tmpfs) in the middle of save: an OSError, and
    neither the output nor a staging directory is left behind."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], check=True)
    try:
        converter = trt.Converter(mlp_dir)
        converter.convert()
        with pytest.raises(OSError) as raised:
            converter.save(disk / "out")
        assert "No space left" in str(raised.value) or raised.value.errno == errno.ENOSPC
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)

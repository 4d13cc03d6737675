"""The TF Serving stand-in (test-only server) behaves like TF Serving where tests rely on it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.support.standin_models import (
    example,
    predict_log,
    predict_request,
    write_warmup,
)
from tests.support.tfserving_standin import StandinHandle, StandinSettings, start_standin
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def served(tmp_path: Path, copy_version: Any) -> Iterator[tuple[StandinHandle, Path]]:
    base = tmp_path / "m"
    base.mkdir()
    copy_version(base, 1)
    handle = start_standin(
        StandinSettings(model_name="m", model_base_path=base, file_system_poll_wait_seconds=0.2)
    )
    yield handle, base
    handle.stop(0)


def _stubs(address: str) -> tuple[Any, Any, grpc.Channel]:
    channel = grpc.insecure_channel(address)
    return (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
        channel,
    )


def _status_request(model: str, version: int | None = None) -> Any:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


def test_predict_through_real_stubs(served: tuple[StandinHandle, Path]) -> None:
    handle, _ = served
    predict, _, channel = _stubs(handle.address)
    with channel:
        response = predict.Predict(predict_request("m", batch=2), timeout=10)
    y = tf.make_ndarray(response.outputs["y"])
    x: np.ndarray = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(y, x * 2.0 + 0.5)
    assert response.model_spec.name == "m"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_warmup_ran_before_available(served: tuple[StandinHandle, Path]) -> None:
    handle, _ = served
    assert handle.version_states("m") == {1: "AVAILABLE"}
    assert handle.warmup_records("m", 1) == 1


def test_new_version_is_picked_up_within_poll_interval(
    served: tuple[StandinHandle, Path], copy_version: Any
) -> None:
    handle, base = served
    copy_version(base, 2)
    started = time.monotonic()
    handle.wait_for_state("m", 2, "AVAILABLE", timeout=5)
    assert time.monotonic() - started < 2.0
    predict, model_service, channel = _stubs(handle.address)
    with channel:
        assert predict.Predict(predict_request("m"), timeout=10).model_spec.version.value == 2
        handle.wait_for_state("m", 1, "END", timeout=5)
        status = model_service.GetModelStatus(_status_request("m"), timeout=10)
        states = {s.version: s.state for s in status.model_version_status}
        assert states == {
            2: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
            1: get_model_status_pb2.ModelVersionStatus.END,
        }
        with pytest.raises(grpc.RpcError) as old:
            predict.Predict(predict_request("m", version=1), timeout=10)
        assert old.value.code() == grpc.StatusCode.NOT_FOUND
        assert "Specific(m, 1)" in old.value.details()


def test_failing_warmup_keeps_version_unavailable(
    served: tuple[StandinHandle, Path], copy_version: Any
) -> None:
    handle, base = served
    staging = base / "staging"
    copy_version(base, 9).rename(staging)
    bad = predict_request("m")
    bad.inputs["nope"].CopyFrom(bad.inputs["x"])
    write_warmup(staging, [predict_log(bad)])
    staging.rename(base / "3")
    handle.wait_for_state("m", 3, "END", timeout=5)
    predict, model_service, channel = _stubs(handle.address)
    with channel:
        assert predict.Predict(predict_request("m"), timeout=10).model_spec.version.value == 1
        status = model_service.GetModelStatus(_status_request("m", 3), timeout=10)
    (only,) = status.model_version_status
    assert only.status.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "nope" in only.status.error_message


def test_classify_regress_multi_inference_and_metadata(
    served: tuple[StandinHandle, Path],
) -> None:
    handle, _ = served
    predict, _, channel = _stubs(handle.address)
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "m"
    classify.model_spec.signature_name = "classify"
    classify.input.example_list.examples.extend([example([1, 2, 3, 4]), example([0, 0, 0, 0])])
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "m"
    regress.model_spec.signature_name = "regress"
    regress.input.CopyFrom(classify.input)
    multi = inference_pb2.MultiInferenceRequest()
    multi.input.CopyFrom(classify.input)
    for signature, method in (
        ("classify", "tensorflow/serving/classify"),
        ("regress", "tensorflow/serving/regress"),
    ):
        task = multi.tasks.add()
        task.model_spec.name = "m"
        task.model_spec.signature_name = signature
        task.method_name = method
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "m"
    with channel:
        classes = predict.Classify(classify, timeout=10).result.classifications
        regressions = predict.Regress(regress, timeout=10).result.regressions
        results = predict.MultiInference(multi, timeout=10).results
        signatures = get_model_metadata_pb2.SignatureDefMap()
        predict.GetModelMetadata(metadata, timeout=10).metadata["signature_def"].Unpack(signatures)
    assert [c.label for c in classes[0].classes] == ["neg", "pos"]
    assert classes[0].classes[1].score > classes[0].classes[0].score
    # x * 2 + 0.5 summed over 4 features.
    assert [r.value for r in regressions] == pytest.approx([22.0, 2.0])
    assert results[1].regression_result.regressions[0].value == pytest.approx(22.0)
    assert len(results[0].classification_result.classifications) == 2
    assert {"serving_default", "classify", "regress"} <= set(signatures.signature_def)


def test_errors_carry_tf_serving_codes(served: tuple[StandinHandle, Path]) -> None:
    handle, _ = served
    predict, model_service, channel = _stubs(handle.address)
    wrong_dtype = predict_request("m")
    wrong_dtype.inputs["x"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 4), np.int32)))
    wrong_shape = predict_request("m")
    wrong_shape.inputs["x"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 3), np.float32)))
    classify_on_predict = classification_pb2.ClassificationRequest()
    classify_on_predict.model_spec.name = "m"
    classify_on_predict.input.example_list.examples.add()
    cases = [
        (lambda: predict.Predict(predict_request("nope")), grpc.StatusCode.NOT_FOUND),
        (lambda: predict.Predict(predict_request("m", version=7)), grpc.StatusCode.NOT_FOUND),
        (lambda: predict.Predict(wrong_dtype), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: predict.Predict(wrong_shape), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: predict.Classify(classify_on_predict), grpc.StatusCode.INVALID_ARGUMENT),
        (
            lambda: predict.Predict(predict_request("m", signature="none")),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (
            lambda: model_service.GetModelStatus(_status_request("nope")),
            grpc.StatusCode.NOT_FOUND,
        ),
    ]
    with channel:
        for call, code in cases:
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == code, error.value.details()
            assert error.value.details()


def test_runs_as_a_script_with_a_model_config_file(tmp_path: Path, copy_version: Any) -> None:
    base = tmp_path / "a"
    base.mkdir()
    copy_version(base, 5)
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "a" base_path: "{base}" '
        'model_platform: "tensorflow" } }'
    )
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests/support/tfserving_standin.py"),
            "--port",
            "0",
            "--model_config_file",
            str(config),
            "--file_system_poll_wait_seconds",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Running gRPC ModelServer at "), line
        address = line.split()[-2]
        predict, _, channel = _stubs(address)
        with channel:
            assert predict.Predict(predict_request("a"), timeout=10).model_spec.version.value == 5
            # A new model appears when the config file changes.
            config.write_text(
                config.read_text().replace(
                    "} }", f'}} config {{ name: "b" base_path: "{base}" }} }}'
                )
            )
            def predict_b() -> predict_pb2.PredictResponse | None:
                try:
                    return predict.Predict(predict_request("b"), timeout=10)
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND
                    return None

            response = wait_until(predict_b, 10, "model b served", interval=0.1)
            assert response.model_spec.name == "b"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0

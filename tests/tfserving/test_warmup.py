"""TF Serving warmup files: round trip, the 1000-record limit, corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from sidecar.base.errors import WarmupError
from sidecar.tfserving.warmup import (
    MAX_WARMUP_RECORDS,
    OverLimit,
    predict_request_from_arrays,
    read_predict_requests,
    read_warmup_file,
    warmup_file_path,
    write_warmup_file,
)


def requests(count: int) -> list[object]:
    return [
        predict_request_from_arrays("m", {"x": np.full((i % 4 + 1, 2), i, np.float32)})
        for i in range(count)
    ]


def test_round_trip_keeps_every_request(tmp_path: Path) -> None:
    sent = [
        predict_request_from_arrays(
            "resnet",
            {"image": np.zeros((8, 4, 4, 3), np.float32), "ids": np.array([[1, 2]], np.int64)},
            signature_name="classify_images",
            version=12,
        ),
        *requests(2),
    ]
    written = write_warmup_file(tmp_path, sent)
    assert written.path == tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    assert (written.written, written.dropped) == (3, 0)
    logs = read_warmup_file(tmp_path)
    assert all(log.WhichOneof("log_type") == "predict_log" for log in logs)
    back = read_predict_requests(tmp_path)
    assert back == sent
    first = back[0]
    assert first.model_spec.signature_name == "classify_images"
    assert first.model_spec.version.value == 12
    assert tf.make_ndarray(first.inputs["image"]).shape == (8, 4, 4, 3)
    assert tf.make_ndarray(first.inputs["ids"]).dtype == np.int64


def test_more_than_1000_is_an_error_that_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(WarmupError) as caught:
        write_warmup_file(tmp_path, requests(MAX_WARMUP_RECORDS + 1))
    assert "1001 warmup requests exceed TF Serving's limit of 1000" in str(caught.value)
    assert "OverLimit.TRUNCATE" in str(caught.value)
    assert not warmup_file_path(tmp_path).exists()


def test_truncation_keeps_the_first_1000_and_counts_the_rest(tmp_path: Path) -> None:
    sent = requests(1003)
    written = write_warmup_file(tmp_path, sent, over_limit=OverLimit.TRUNCATE)
    assert (written.written, written.dropped) == (1000, 3)
    assert read_predict_requests(tmp_path) == sent[:1000]
    exactly = write_warmup_file(tmp_path, sent[:1000])
    assert (exactly.written, exactly.dropped) == (1000, 0)


def test_no_requests_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WarmupError, match="no warmup requests"):
        write_warmup_file(tmp_path, [])


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    assert read_warmup_file(tmp_path) == []
    path = warmup_file_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(b"\x05\x00\x00\x00garbage that is not a TFRecord")
    with pytest.raises(WarmupError, match="not a TFRecord of PredictionLog") as caught:
        read_warmup_file(tmp_path)
    assert str(path) in str(caught.value)


def test_records_that_are_not_prediction_logs(tmp_path: Path) -> None:
    path = warmup_file_path(tmp_path)
    path.parent.mkdir()
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(b"\xff\xff\xff not a proto")
    with pytest.raises(WarmupError, match="read 0 records"):
        read_warmup_file(tmp_path)


def test_reading_inside_a_graph_context_works(tmp_path: Path) -> None:
    write_warmup_file(tmp_path, requests(2))
    with tf.Graph().as_default():
        assert len(read_warmup_file(tmp_path)) == 2

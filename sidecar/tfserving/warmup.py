"""TF Serving warmup files: ``assets.extra/tf_serving_warmup_requests``.

A TFRecord of ``PredictionLog`` protos that TF Serving replays while loading a
version; the version becomes AVAILABLE only after they all ran, and TF Serving
reads at most 1000 records.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sidecar.base.errors import WarmupError

if TYPE_CHECKING:
    import numpy as np

WARMUP_RELATIVE_PATH: Final = Path("assets.extra") / "tf_serving_warmup_requests"
"""Where TF Serving looks for the warmup file inside a SavedModel directory."""

MAX_WARMUP_RECORDS: Final = 1000
"""TF Serving replays at most this many records."""


class OverLimit(enum.Enum):
    """What to do with more than MAX_WARMUP_RECORDS requests."""

    ERROR = "error"
    """Raise WarmupError and write nothing."""

    TRUNCATE = "truncate"
    """Write the first MAX_WARMUP_RECORDS and report how many were dropped."""


@dataclass(frozen=True)
class WarmupWritten:
    """The result of :func:`write_warmup_file`."""

    path: Path
    """The warmup file written."""

    written: int
    """Records in it."""

    dropped: int
    """Requests left out because of the 1000-record limit."""


def warmup_file_path(saved_model_dir: Path) -> Path:
    """The warmup file's path inside ``saved_model_dir``."""
    return saved_model_dir / WARMUP_RELATIVE_PATH


def write_warmup_file(
    saved_model_dir: Path,
    requests: Sequence[Any],
    *,
    over_limit: OverLimit = OverLimit.ERROR,
) -> WarmupWritten:
    """Write ``requests`` (``PredictRequest`` protos) as ``PredictionLog`` records.

    Replaces an existing warmup file. Meant for a staging directory, which is
    published atomically afterwards. Raises WarmupError with no requests or
    (with ``OverLimit.ERROR``) more than MAX_WARMUP_RECORDS.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = warmup_file_path(saved_model_dir)
    if not requests:
        raise WarmupError(
            "no warmup requests to write", where=str(path),
            fix="give at least one PredictRequest (e.g. from predict_request_from_arrays)",
        )
    dropped = max(0, len(requests) - MAX_WARMUP_RECORDS)
    if dropped and over_limit is OverLimit.ERROR:
        raise WarmupError(
            f"{len(requests)} warmup requests exceed TF Serving's limit of {MAX_WARMUP_RECORDS}",
            where=str(path),
            fix=f"pass at most {MAX_WARMUP_RECORDS} requests, or over_limit=OverLimit.TRUNCATE",
        )
    kept = requests[:MAX_WARMUP_RECORDS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in kept:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return WarmupWritten(path=path, written=len(kept), dropped=dropped)


def read_warmup_file(saved_model_dir: Path) -> list[Any]:
    """Every ``PredictionLog`` in the SavedModel's warmup file; [] if it has none.

    Raises WarmupError if the file is corrupt or holds something else.
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    path = warmup_file_path(saved_model_dir)
    if not path.is_file():
        return []
    logs: list[Any] = []
    try:
        # A plain record reader: works in eager and graph mode (inside a Session block) alike.
        for record in tf.compat.v1.io.tf_record_iterator(str(path)):
            logs.append(prediction_log_pb2.PredictionLog.FromString(record))
    except (tf.errors.DataLossError, tf.errors.OpError, DecodeError) as exc:
        raise WarmupError(
            f"the warmup file is not a TFRecord of PredictionLog protos "
            f"(read {len(logs)} records, then: {type(exc).__name__})",
            where=str(path),
            fix="delete or regenerate the model's warmup file",
        ) from exc
    return logs


def read_predict_requests(saved_model_dir: Path) -> list[Any]:
    """The ``PredictRequest`` of every predict record in the warmup file (others skipped)."""
    return [
        log.predict_log.request
        for log in read_warmup_file(saved_model_dir)
        if log.WhichOneof("log_type") == "predict_log"
    ]


def predict_request_from_arrays(
    model_name: str,
    inputs: Mapping[str, np.ndarray[Any, Any]],
    *,
    signature_name: str = "serving_default",
    version: int | None = None,
) -> Any:
    """A ``PredictRequest`` feeding ``inputs`` (input name -> array) to one signature."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request

"""Work done in another Python process (a serving-like TF1 Session, its own XLA
cache): tensors go as files of serialized TensorProtos, the answer comes back as
the last line of its output, in JSON. `run_child` starts a fresh process each time;
`warm_child` keeps one for work that leaves nothing behind."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from converter.errors import ConverterError

_PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]  # holds converter/ and durable/


class ChildFailed(ConverterError):
    """The child exited with an error; the message is the tail of its stderr. Callers
    raise their own error naming what failed."""


def child_environment(settings: Mapping[str, str] | None = None,
                      xla_flags: str = "") -> dict[str, str]:
    """Our environment with the variables `settings` on top, `xla_flags` added to
    TF_XLA_FLAGS, and this checkout's packages importable."""
    environment = {**os.environ, **(settings or {})}
    environment["TF_XLA_FLAGS"] = " ".join(filter(None, [
        environment.get("TF_XLA_FLAGS", ""), xla_flags]))
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_PACKAGE_ROOT), environment.get("PYTHONPATH", "")])
    )
    return environment


def run_child(module: str, request_dir: pathlib.Path, xla_flags: str = "",
              settings: Mapping[str, str] | None = None) -> Any:
    """Run `python -m module request_dir` in a fresh process, with the environment
    variables `settings` on top of ours; return its last output line, parsed."""
    environment = child_environment(settings, xla_flags)
    done = subprocess.run([sys.executable, "-m", module, str(request_dir)],
                          env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ChildFailed("\n".join(done.stderr.strip().splitlines()[-15:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_tensors(
    directory: pathlib.Path, prefix: str, tensors: Mapping[str, np.ndarray]
) -> dict[str, str]:
    """Save each array as a serialized TensorProto (strings included); name -> file."""
    import tensorflow as tf

    files = {}
    for position, (name, value) in enumerate(sorted(tensors.items())):
        path = directory / f"{prefix}-{position}.pb"
        path.write_bytes(tf.make_tensor_proto(value).SerializeToString())
        files[name] = path.name
    return files


def read_tensor(directory: pathlib.Path, name: str) -> np.ndarray:
    """The array `write_tensors` saved as file `name` in `directory`."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto.FromString((directory / name).read_bytes())
    return np.asarray(tf.make_ndarray(proto))

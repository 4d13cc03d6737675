"""Compile a saved model's engines the way TF Serving will run them.

XLA's cache key includes the names of the functions as the serving process sees
them, so engines are compiled in a separate process that loads the model through
the TF1 Session loader (TF Serving's path) with the persistent cache pointed at
the model's own engines directory. The same run proves the model loads that way
and checks its outputs against the original model's.

Run as: python -m converter.serving.engine_export REQUEST_DIR (see `export_engines`).
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np

from converter.errors import EngineExportError
from converter.serving.child_process import ChildFailed, read_tensor, run_child, write_tensors


def export_engines(
    saved_model_dir: pathlib.Path,
    tags: Sequence[str],
    signature_key: str,
    inputs: Sequence[Mapping[str, np.ndarray]],
    expected: Sequence[Mapping[str, np.ndarray]],
    tolerance: float,
    cache_dir: pathlib.Path,
) -> float:
    """Run `inputs` through the saved model in a fresh Session process whose XLA
    cache is `cache_dir`; return the largest scaled error against `expected`."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tftrt-export-") as scratch:
        request = pathlib.Path(scratch)
        cases = []
        for index, (feed, want) in enumerate(zip(inputs, expected, strict=True)):
            cases.append({
                "inputs": write_tensors(request, f"in{index}", feed),
                "outputs": write_tensors(request, f"out{index}", want),
            })
        (request / "request.json").write_text(json.dumps({
            "model": str(saved_model_dir), "tags": list(tags), "key": signature_key,
            "cases": cases, "tolerance": tolerance,
        }))
        try:
            answer = run_child("converter.serving.engine_export", request,
                               f"--tf_xla_persistent_cache_directory={cache_dir}")
        except ChildFailed as failure:
            raise EngineExportError(
                f"the converted model at {saved_model_dir} failed in a TF1 Session (the way "
                f"TF Serving loads it), so it was not saved:\n{failure}"
            ) from None
    return float(answer["error"])


def _main(request_dir: str) -> None:
    import tensorflow as tf

    from converter.serving.session import ServingSession

    def read(files: Mapping[str, str]) -> dict[str, np.ndarray]:
        return {name: read_tensor(pathlib.Path(request_dir), file)
                for name, file in files.items()}

    meta = json.loads(pathlib.Path(request_dir, "request.json").read_text())
    tf.compat.v1.disable_eager_execution()
    with ServingSession.load(meta["model"], meta["tags"]) as served:
        worst = served.largest_error(meta["key"],
                                     [read(case["inputs"]) for case in meta["cases"]],
                                     [read(case["outputs"]) for case in meta["cases"]])
    if not worst <= meta["tolerance"]:
        raise SystemExit(
            f"outputs differ from the original model: scaled error {worst:.3g} exceeds "
            f"{meta['tolerance']:g}"
        )
    print(json.dumps({"error": worst}))


if __name__ == "__main__":
    _main(sys.argv[1])

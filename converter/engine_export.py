"""Compile a saved model's engines the way TF Serving will run them.

XLA's cache key includes the names of the functions as the serving process sees
them, so engines are compiled in a separate process that loads the model through
the TF1 Session loader (TF Serving's path) with the persistent cache pointed at
the model's own engines directory. The same run proves the model loads that way
and checks its outputs against the original model's.

Run as: python -m converter.engine_export REQUEST.npz (see `export_engines`).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np

from converter.errors import EngineExportError

_PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent.parent


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
        request = pathlib.Path(scratch, "request.npz")
        arrays: dict[str, np.ndarray] = {}
        for index, (feed, want) in enumerate(zip(inputs, expected, strict=True)):
            arrays.update({f"in/{index}/{k}": v for k, v in feed.items()})
            arrays.update({f"out/{index}/{k}": v for k, v in want.items()})
        arrays["meta"] = np.array(json.dumps({
            "model": str(saved_model_dir), "tags": list(tags), "key": signature_key,
            "count": len(inputs), "tolerance": tolerance,
        }))
        np.savez(request, **arrays)  # type: ignore[arg-type]
        environment = dict(os.environ)
        environment["TF_XLA_FLAGS"] = " ".join(filter(None, [
            environment.get("TF_XLA_FLAGS", ""),
            f"--tf_xla_persistent_cache_directory={cache_dir}",
        ]))
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_PACKAGE_ROOT), environment.get("PYTHONPATH", "")])
        )
        done = subprocess.run(
            [sys.executable, "-m", "converter.engine_export", str(request)],
            env=environment, capture_output=True, text=True, check=False,
        )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise EngineExportError(
            f"the converted model at {saved_model_dir} failed in a TF1 Session (the way TF "
            f"Serving loads it), so it was not saved:\n{tail}"
        )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["error"])


def _main(request_path: str) -> None:
    import tensorflow as tf

    from converter.engines import scaled_error

    request = np.load(request_path)
    meta = json.loads(str(request["meta"]))
    tf.compat.v1.disable_eager_execution()
    worst = 0.0
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, meta["tags"], meta["model"])
        signature = meta_graph.signature_def[meta["key"]]
        fetch_names = sorted(signature.outputs)
        fetches = [signature.outputs[name].name for name in fetch_names]
        for index in range(meta["count"]):
            prefix = f"in/{index}/"
            feed = {signature.inputs[k[len(prefix):]].name: request[k]
                    for k in request.files if k.startswith(prefix)}
            produced = session.run(fetches, feed)
            expected = [request[f"out/{index}/{name}"] for name in fetch_names]
            worst = max(worst, scaled_error(produced, expected))
    if not worst <= meta["tolerance"]:
        raise SystemExit(
            f"outputs differ from the original model: scaled error {worst:.3g} exceeds "
            f"{meta['tolerance']:g}"
        )
    print(json.dumps({"error": worst}))


if __name__ == "__main__":
    _main(sys.argv[1])

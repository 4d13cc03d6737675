"""Test-only: serve a SavedModel through the TF1 Session loader (the converter's
`ServingSession`) with XLA's persistent cache at a given directory, and report the
cache's files after each call. A new file means the call compiled an engine; none
means it used a cached engine or ran native ops.

    python tests/support/xla_cache_probe.py MODEL CACHE_DIR FEATURES BATCH [BATCH ...]

Prints one JSON line: [{"batch": B, "files": N, "seconds": S}, ...].
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(model: str, cache_dir: str, features: int, batches: list[int]) -> None:
    os.environ["TF_XLA_FLAGS"] = f"--tf_xla_persistent_cache_directory={cache_dir}"
    import numpy as np
    import tensorflow as tf

    from converter import ServingSession

    tf.compat.v1.disable_eager_execution()
    results = []
    with ServingSession.load(model) as served:
        (name,) = served.signature_def("serving_default").inputs
        for batch in batches:
            call = served.caller(
                "serving_default", {name: np.ones((batch, features), np.float32)})
            start = time.perf_counter()
            call()
            seconds = time.perf_counter() - start
            files = [f for f in os.listdir(cache_dir) if f.endswith(".pb")]
            results.append({"batch": batch, "files": len(files), "seconds": seconds})
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(b) for b in sys.argv[4:]])

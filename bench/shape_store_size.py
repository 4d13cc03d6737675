"""Benchmark: the shape store's disk use at its bound, beside what a row per shape set per
minute for a day would take.

Fills a real store file (the sidecar's schema) with the most count rows one signature can
have (`ShapeStoreSettings.max_rows_per_signature`: every shape set of the cap with every
fine and coarse bucket), one 4-d input per shape set, and measures the file. With
``--minutes-too`` it also writes a day of per-minute rows for the same shape sets (about
1.1 GB of temporary disk); otherwise that size is extrapolated from the measured bytes a
row.

    python bench/shape_store_size.py [--minutes-too]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import tempfile
import time


def _file_bytes(rows_per_shape_set: int) -> tuple[int, int]:
    """(rows, file bytes) of a store with that many rows per shape set at the cap."""
    from sidecar.shapes import ShapeSet, ShapeStoreSettings, TensorSpec
    from sidecar.shapes.schema import DATABASE_NAME, open_database

    shape_sets = ShapeStoreSettings().max_shape_sets_per_signature
    with tempfile.TemporaryDirectory() as directory:
        db = open_database(Path(directory))
        keys = [ShapeSet.of({"input_1": TensorSpec("DT_FLOAT", (batch, 224, 224, 3))}).key()
                for batch in range(1, shape_sets + 1)]
        first = int(time.time() // 60)
        db.execute("BEGIN")
        db.executemany("INSERT INTO shape_counts VALUES (?, ?, ?, ?, ?)", (
            ("resnet50", "serving_default", key, first + bucket, 17)
            for key in keys for bucket in range(rows_per_shape_set)))
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = (Path(directory) / DATABASE_NAME).stat().st_size
        db.close()
    return shape_sets * rows_per_shape_set, size


def main() -> None:
    """Measure and print both."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes-too", action="store_true",
                        help="also write a day of per-minute rows instead of extrapolating")
    args = parser.parse_args()
    from sidecar.shapes import ShapeStoreSettings

    settings = ShapeStoreSettings()
    rows, size = _file_bytes(settings.max_rows_per_shape_set)
    print(f"bound: {rows} rows ({settings.max_rows_per_shape_set} per shape set), "
          f"{size / 1e6:.1f} MB, {size / rows:.0f} bytes a row")
    per_minute = round(settings.window_seconds / settings.bucket_seconds) + 1
    if args.minutes_too:
        minute_rows, minute_size = _file_bytes(per_minute)
        print(f"a row per minute for a day: {minute_rows} rows, {minute_size / 1e6:.0f} MB")
    else:
        minute_rows = per_minute * settings.max_shape_sets_per_signature
        print(f"a row per minute for a day: {minute_rows} rows, about "
              f"{minute_rows * size / rows / 1e6:.0f} MB (extrapolated)")


if __name__ == "__main__":
    main()

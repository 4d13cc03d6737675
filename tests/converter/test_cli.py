"""The `tftrt` command, run as a user runs it."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys


def _tftrt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "converter.cli", *args],
                          capture_output=True, text=True, check=False)


def test_convert_with_shapes_and_engine_cache(mlp_dir: pathlib.Path,
                                              tmp_path: pathlib.Path) -> None:
    done = _tftrt("convert", "--input", str(mlp_dir), "--output", str(tmp_path / "out"),
                  "--shapes", "x=1x16,8x16", "--max-engines", "2", "--no-build-at-runtime",
                  "--keep-slower-engines",
                  "--engine-cache", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    assert "[3/5] building engines" in done.stdout and "done in" in done.stdout
    assert "engine file(s) installed" in done.stdout
    report = json.loads((tmp_path / "out/assets.extra/tftrt/conversion.json").read_text())
    assert report["params"]["allow_build_at_runtime"] is False
    (segment,) = report["segments"]
    assert sorted(e["shapes"] for e in segment["engines"]) == [[[1, 16]], [[8, 16]]]
    assert list((tmp_path / "cache").glob("tf-*/*/*.pb"))


def test_bad_input_is_a_clear_error_and_leaves_nothing(mlp_dir: pathlib.Path,
                                                       tmp_path: pathlib.Path) -> None:
    missing = _tftrt("convert", "--input", str(tmp_path / "nope"), "--output",
                     str(tmp_path / "out"))
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    bad_shape = _tftrt("convert", "--input", str(mlp_dir), "--output", str(tmp_path / "out"),
                       "--shapes", "x=8by16")
    assert bad_shape.returncode == 2 and "not of the form" in bad_shape.stderr
    wrong_input = _tftrt("convert", "--input", str(mlp_dir), "--output", str(tmp_path / "out"),
                         "--shapes", "image=1x16")
    assert wrong_input.returncode == 2 and "not inputs" in wrong_input.stderr
    assert list(tmp_path.iterdir()) == []

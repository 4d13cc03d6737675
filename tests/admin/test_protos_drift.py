"""The checked-in generated code is exactly what protos/generate.py makes from the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    # A separate process: protoc inside a process that loaded TensorFlow crashes
    # (both carry their own protobuf runtime).
    done = subprocess.run(
        [sys.executable, str(REPO / "protos" / "generate.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    written = sorted(Path(line) for line in done.stdout.split())
    assert {p.name for p in written} == {"admin_pb2.py", "admin_pb2.pyi", "admin_pb2_grpc.py"}
    for relative in written:
        fresh = (tmp_path / relative).read_bytes()
        checked_in = (REPO / relative).read_bytes()
        assert fresh == checked_in, (
            f"{relative} is out of date with its .proto: run `python protos/generate.py` "
            "(with the grpcio-tools version named in the file's header) and commit the result"
        )
    on_disk = sorted(p.relative_to(REPO) for p in (REPO / "protos").rglob("*_pb2*")
                        if p.suffix in (".py", ".pyi"))
    assert on_disk == written, "generated files without a .proto are left over"

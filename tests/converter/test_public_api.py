"""The converter's public API: every name resolves, what the sidecar and the benchmarks
need is there, the durable writes are not (they are `durable`'s), and the light names
load without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

import converter
import durable

USED_OUTSIDE = ["ServingSession", "batch_input_fn", "synthetic_input_fn", "build_demo_model",
                "DEMO_SEQUENCE", "ONEDNN_VARIABLE", "onednn_enabled", "graph_input_specs",
                "read_meta_graph", "scaled_error", "ConverterError", "install_engines"]
"""Names the sidecar, bench/ and tests/support import from `converter`."""


def test_every_public_name_resolves_and_is_listed() -> None:
    for name in converter.__all__:
        assert getattr(converter, name) is not None, name
    assert set(USED_OUTSIDE) <= set(converter.__all__)


@pytest.mark.parametrize("name", ["fsync_tree", "fsync_directory", "rename_no_replace",
                                  "temporary_prefix", "write_atomically", "write_new"])
def test_durable_writes_come_from_durable_not_the_converter(name: str) -> None:
    assert callable(getattr(durable, name))
    assert name not in converter.__all__
    with pytest.raises(AttributeError, match=name):
        getattr(converter, name)


def test_the_light_names_load_no_tensorflow() -> None:
    probe = ("import sys, converter, converter.console\n"
             "converter.ONEDNN_VARIABLE, converter.ConverterError, converter.DEMO_SEQUENCE\n"
             "converter.TrtPrecisionMode, converter.BACKENDS\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "[]"

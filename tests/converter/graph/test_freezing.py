"""Freezing read-only variables on the flat graph, and the size limit that keeps them."""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf

from converter.graph.freeze import FREEZE_LIMIT_BYTES, freeze, written_variables
from converter.graph.inline import flatten_signature, function_from_flat
from converter.savedmodel.loading import load_signature


def test_weights_past_the_budget_stay_variables_and_still_serve(
        mlp_dir: pathlib.Path) -> None:
    loaded = load_signature(mlp_dir)
    flat = flatten_signature(loaded.function)
    assert written_variables(flat) == set()
    everything = freeze(flat, set(), FREEZE_LIMIT_BYTES)
    assert everything.frozen == 4 and everything.kept == {}
    assert "ReadVariableOp" not in {n.op for n in everything.flat.graph_def.node}
    # A budget one byte short of all weights: the last variable in stays a variable.
    partial = freeze(flat, set(), everything.frozen_bytes - 1)
    assert 0 < partial.frozen < 4 and len(partial.kept) == 4 - partial.frozen
    assert all("protobuf's 2 GB limit" in why for why in partial.kept.values())
    x = tf.constant(np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32))
    want = tf.nest.flatten(loaded.function(x=x))
    for result in (everything, partial):
        function = function_from_flat(result.flat, result.flat.graph_def, loaded.function)
        np.testing.assert_allclose(tf.nest.flatten(function(x=x))[0], want[0], rtol=1e-6)


def test_a_variable_written_elsewhere_is_not_frozen(mlp_dir: pathlib.Path) -> None:
    loaded = load_signature(mlp_dir)
    flat = flatten_signature(loaded.function)
    some = next(iter(flat.captures.values()))
    result = freeze(flat, {id(some)}, FREEZE_LIMIT_BYTES)
    assert result.frozen == 3 and list(result.kept.values()) == ["another signature writes it"]

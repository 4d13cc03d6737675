"""INT8 ranges read from a quantization-aware-trained graph's own quantization nodes
(TF-TRT's `use_calibration=False`): no calibration data, the ranges training chose.

A QAT graph carries `FakeQuantWithMinMaxVars` (or its per-channel and Args forms, or
`QuantizeAndDequantizeV2/V3/V4`) on its weights and activations. On a weight (a
constant after freezing) the node is folded: the weight becomes its fake-quantized
value, already on the int8 grid. On an activation the node is bypassed and its range
recorded for the tensor it quantized; the range follows that tensor through ops that
keep ranges (reshapes, pooling, zero padding). The float graph that remains is what
Intel Neural Compressor rewrites to int8 (`converter.precision.int8`), and then
`pin_ranges` sets every range it quantizes or requantizes with to the recorded one,
whatever its own calibration saw: the graph's ranges decide, as in TF-TRT.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
from tensorflow.core.framework import graph_pb2

from converter.graph.names import data_inputs, is_control_input, op_name, output_port

FAKE_QUANT_OPS: Final = frozenset({
    "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel", "FakeQuantWithMinMaxArgs",
    "QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3", "QuantizeAndDequantizeV4"})
"""The quantization nodes whose ranges `use_calibration=False` reads."""

_RANGE_KEEPING: Final = frozenset({"Identity", "Reshape", "Squeeze", "ExpandDims", "Transpose",
                                   "MaxPool", "MaxPool3D", "AvgPool", "AvgPool3D", "Pad"})
"""Ops whose output lies in their first input's range (a zero pad adds zero, which
every fake-quant range holds)."""

_FUSED_AFTER: Final = frozenset({"BiasAdd", "Add", "AddV2", "Relu", "Relu6", "LeakyRelu",
                                 "Elu"})
"""Ops the int8 rewrite fuses after a convolution or matmul: a requantizing op's
output is the last of them, where QAT put the activation's fake-quant node."""

Range = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class FakeQuantRanges:
    """A QAT graph without its quantization nodes, and the ranges they gave."""

    graph_def: graph_pb2.GraphDef
    """The float graph: weights fake-quantized into constants, activation nodes bypassed."""
    ranges: dict[str, Range]
    """Range of each activation tensor, by tensor name ("op" for output 0, else "op:1")."""
    nodes: int
    """Quantization nodes read."""
    folded: int
    """Of them, those on weights, folded into the constants."""
    per_channel: list[str]
    """Ops whose weights were fake-quantized per channel: the rewrite quantizes their
    weights per channel too, on the same grid."""


def fake_quant_nodes(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Names of the graph's quantization nodes, in graph order."""
    return [node.name for node in graph_def.node if node.op in FAKE_QUANT_OPS]


def _tensor(graph_def_input: str) -> str:
    """A data input as the rewrite's tensor names read: "op" for output 0."""
    port = output_port(graph_def_input)
    return op_name(graph_def_input) if port == 0 else f"{op_name(graph_def_input)}:{port}"


def _constant_inputs(graph_def: graph_pb2.GraphDef) -> set[str]:
    """Nodes whose value is a constant: Const, and Identity chains over one."""
    nodes = {node.name: node for node in graph_def.node}
    constant: set[str] = set()

    def is_constant(name: str) -> bool:
        node = nodes.get(name)
        if node is None:
            return False
        if node.op == "Const" or name in constant:
            constant.add(name)
            return True
        data = data_inputs(node.input)
        if node.op == "Identity" and data and is_constant(op_name(data[0])):
            constant.add(name)
            return True
        return False

    for node in graph_def.node:
        is_constant(node.name)
    return constant


def _evaluate(graph_def: graph_pb2.GraphDef, tensors: list[str]) -> list[np.ndarray]:
    """The values of tensors that only depend on constants."""
    import tensorflow as tf

    if not tensors:
        return []
    needed = tf.compat.v1.graph_util.extract_sub_graph(
        graph_def, sorted({op_name(t) for t in tensors}))
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(needed, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return [np.asarray(v) for v in session.run(
            [t if ":" in t else f"{t}:0" for t in tensors])]


def _range_inputs(node: graph_pb2.NodeDef) -> tuple[str, str] | Range | str:
    """Where a quantization node's range is: its min and max inputs, its attributes,
    or why it has none fixed."""
    data = data_inputs(node.input)
    if node.op == "FakeQuantWithMinMaxArgs":
        return node.attr["min"].f, node.attr["max"].f
    if node.op.startswith("QuantizeAndDequantize") and not node.attr["range_given"].b:
        return (f"{node.op} node {node.name!r} has range_given=False: it takes its range "
                "from each input at run time, so the graph fixes none")
    return data[1], data[2]


def _range_of(place: tuple[str, str] | Range, values: Mapping[str, np.ndarray]) -> Range:
    """A range from its min and max inputs' values (the lowest and highest channel's
    for a per-channel node: int8 activations take one range), or as given."""
    low, high = place
    if isinstance(low, str) and isinstance(high, str):
        return float(np.min(values[low])), float(np.max(values[high]))
    return float(low), float(high)


def _bits(node: graph_pb2.NodeDef, constants: Mapping[str, np.ndarray]) -> int:
    if node.op == "QuantizeAndDequantizeV3":
        return int(constants[node.input[3]])
    return node.attr["num_bits"].i if "num_bits" in node.attr else 8


def read_ranges(graph_def: graph_pb2.GraphDef) -> FakeQuantRanges | str:
    """`graph_def` (weights as constants) without its quantization nodes, with the
    ranges they fixed; or why the ranges cannot be read."""
    nodes = fake_quant_nodes(graph_def)
    if not nodes:
        return "the graph has no fake-quantization nodes"
    by_name = {node.name: node for node in graph_def.node}
    constant = _constant_inputs(graph_def)
    places: dict[str, tuple[str, str] | Range] = {}
    for name in nodes:
        place = _range_inputs(by_name[name])
        if isinstance(place, str) and op_name(by_name[name].input[0]) not in constant:
            return place
        if not isinstance(place, str):
            places[name] = place
    weights = [n for n in nodes if op_name(by_name[n].input[0]) in constant]
    activations = [n for n in nodes if n not in weights]
    wanted = [*weights, *(t for n in activations if isinstance(places[n][0], str)
                          for t in places[n]),
              *(by_name[n].input[3] for n in nodes if by_name[n].op == "QuantizeAndDequantizeV3")]
    values = dict(zip(wanted, _evaluate(graph_def, [str(t) for t in wanted]), strict=True))
    for name in nodes:
        bits = _bits(by_name[name], values)
        if bits > 8:
            return (f"{by_name[name].op} node {name!r} quantizes to {bits} bits; int8 "
                    "kernels take at most 8")
    ranges: dict[str, Range] = {}
    bypass: dict[str, str] = {}
    for name in activations:
        low, high = _range_of(places[name], values)
        quantized = _tensor(by_name[name].input[0])
        known = ranges.get(quantized, (low, high))
        ranges[quantized] = (min(known[0], low), max(known[1], high))
        bypass[name] = by_name[name].input[0]
    rewired = _rewired(graph_def, bypass, {name: values[name] for name in weights})
    per_channel = {n for n in weights if by_name[n].op == "FakeQuantWithMinMaxVarsPerChannel"
                   or ("axis" in by_name[n].attr and by_name[n].attr["axis"].i != -1)}
    return FakeQuantRanges(
        graph_def=rewired, ranges=propagated(rewired, ranges), nodes=len(nodes),
        folded=len(weights), per_channel=[node.name for node in rewired.node if any(
            op_name(i) in per_channel for i in node.input if not is_control_input(i))])


def _rewired(graph_def: graph_pb2.GraphDef, bypass: Mapping[str, str],
             folded: Mapping[str, np.ndarray]) -> graph_pb2.GraphDef:
    """`graph_def` with each bypassed node's readers reading its input instead, and
    each folded node a constant of its value."""
    import tensorflow as tf

    rewritten = graph_pb2.GraphDef()
    rewritten.versions.CopyFrom(graph_def.versions)
    rewritten.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.name in bypass:
            continue
        copy = rewritten.node.add()
        if node.name in folded:
            copy.name, copy.op = node.name, "Const"
            copy.attr["dtype"].type = tf.float32.as_datatype_enum
            copy.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(
                folded[node.name].astype(np.float32)))
            continue
        copy.CopyFrom(node)
        for index, graph_input in enumerate(copy.input):
            target = op_name(graph_input)
            while target in bypass:
                source = bypass[target]
                graph_input = f"^{op_name(source)}" if is_control_input(graph_input) else source
                target = op_name(graph_input)
            copy.input[index] = graph_input
    return rewritten


def propagated(graph_def: graph_pb2.GraphDef, ranges: Mapping[str, Range]) -> dict[str, Range]:
    """`ranges`, and the same range for the outputs of range-keeping ops over a
    ranged tensor in `graph_def` (one without quantization nodes)."""
    spread = dict(ranges)
    for node in reversed(graph_def.node):
        # An Identity's output is its input: the rewrite may read either.
        data = data_inputs(node.input)
        if node.op == "Identity" and node.name in spread and _tensor(data[0]) not in spread:
            spread[_tensor(data[0])] = spread[node.name]
    for node in graph_def.node:  # frozen graphs are in topological order
        data = data_inputs(node.input)
        if node.op in _RANGE_KEEPING and data and node.name not in spread:
            known = spread.get(_tensor(data[0]))
            if known is not None:
                spread[node.name] = known
    return spread


def unranged_ops(graph_def: graph_pb2.GraphDef, ranges: Mapping[str, Range],
                 quantizable: frozenset[str]) -> list[str]:
    """The quantizable ops whose data input has no range: they stay float, as TF-TRT
    leaves a layer without a dynamic range in float."""
    return [node.name for node in graph_def.node
            if node.op in quantizable and _tensor(node.input[0]) not in ranges]


def _requantized_tensor(int8_node: str, float_graph: graph_pb2.GraphDef) -> str | None:
    """The float graph's tensor a requantizing op outputs: its convolution or matmul
    (the rewrite names the op after it, "NAME_eightbit_...") and the fused ops after it."""
    origin = int8_node.split("_eightbit_")[0]
    readers: dict[str, list[graph_pb2.NodeDef]] = {}
    for node in float_graph.node:
        for graph_input in node.input:
            if not is_control_input(graph_input):
                readers.setdefault(op_name(graph_input), []).append(node)
    if origin == int8_node or origin not in {n.name for n in float_graph.node}:
        return None
    current = origin
    while len(readers.get(current, [])) == 1 and readers[current][0].op in _FUSED_AFTER:
        current = readers[current][0].name
    return current


def _freezed_output_inputs(node: graph_pb2.NodeDef) -> tuple[int, int] | None:
    """Where a requantizing int8 op takes the range it requantizes to."""
    from tensorflow.python.framework import op_def_registry

    data = [i for i, name in enumerate(node.input) if not is_control_input(name)]
    if node.op.startswith("_FusedQuantized"):
        fused = [op.decode() for op in node.attr["fused_ops"].list.s]
        return (data[-2], data[-1]) if "Requantize" in fused else None
    if not node.op.endswith("Requantize"):
        return None
    op_def = op_def_registry.get(node.op)
    names = [arg.name for arg in op_def.input_arg] if op_def is not None else []
    if "min_freezed_output" not in names or "max_freezed_output" not in names:
        return None
    return names.index("min_freezed_output"), names.index("max_freezed_output")


def pin_ranges(int8_graph: graph_pb2.GraphDef, float_graph: graph_pb2.GraphDef,
               ranges: Mapping[str, Range]) -> tuple[graph_pb2.GraphDef, list[str]]:
    """`int8_graph` with the range of every QuantizeV2 and every requantizing op set to
    the one the fake-quant nodes gave its tensor in `float_graph` (the graph the
    rewrite was given), and the original ops whose tensor has none (to keep float)."""
    import tensorflow as tf

    pinned = graph_pb2.GraphDef()
    pinned.CopyFrom(int8_graph)
    unranged: list[str] = []

    def constant(name: str, value: float) -> str:
        node = pinned.node.add(name=name, op="Const")
        node.attr["dtype"].type = tf.float32.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(value)))
        return name

    for node in list(pinned.node):
        if node.op == "QuantizeV2":
            where, tensor = (1, 2), _tensor(node.input[0])
        else:
            freezed = _freezed_output_inputs(node)
            if freezed is None:
                continue
            where, tensor = freezed, _requantized_tensor(node.name, float_graph) or ""
        if tensor not in ranges:
            unranged.append(node.name.split("_eightbit_")[0])
            continue
        low, high = ranges[tensor]
        node.input[where[0]] = constant(f"{node.name}/fake_quant_min", low)
        node.input[where[1]] = constant(f"{node.name}/fake_quant_max", high)
        if node.op == "QuantizeV2" and low >= 0:
            _unsigned(node, pinned)
    for node in list(pinned.node):
        if not _float_bias(node, pinned, float_graph):
            unranged.append(node.name.split("_eightbit_")[0])
    return pinned, unranged


def _float_bias(node: graph_pb2.NodeDef, graph_def: graph_pb2.GraphDef,
                float_graph: graph_pb2.GraphDef) -> bool:
    """Give an int8 op with an int32 bias its float bias again, or whether it needs
    none: the rewrite scaled that bias by the input range it calibrated, not the one
    pinned, and the kernel scales a float bias itself. False where it cannot."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.framework import op_def_registry

    if "Tbias" not in node.attr or node.attr["Tbias"].type != types_pb2.DT_QINT32:
        return True
    op_def = op_def_registry.get(node.op)
    names = [arg.name for arg in op_def.input_arg] if op_def is not None else []
    original = {n.name: n for n in float_graph.node}.get(
        op_name(node.input[names.index("bias")])) if "bias" in names else None
    if original is None or original.op != "Const":
        return False
    bias = graph_def.node.add()
    bias.CopyFrom(original)
    bias.name = f"{node.name}/float_bias"
    node.input[names.index("bias")] = bias.name
    node.attr["Tbias"].type = types_pb2.DT_FLOAT
    return True


def _unsigned(quantize: graph_pb2.NodeDef, graph_def: graph_pb2.GraphDef) -> None:
    """A QuantizeV2 to signed int8 of a tensor the fake-quant range keeps non-negative
    made unsigned, with its readers: the rewrite quantizes a graph input to qint8, on
    128 of the 256 steps QAT trained with; quint8 has them all (zero stays zero)."""
    from tensorflow.core.framework import types_pb2

    if quantize.attr["T"].type != types_pb2.DT_QINT8 or quantize.attr["mode"].s != b"SCALED":
        return
    readers = [node for node in graph_def.node if any(
        op_name(i) == quantize.name for i in node.input if not is_control_input(i))]
    if not readers or not all("Tinput" in node.attr for node in readers):
        return
    quantize.attr["T"].type = types_pb2.DT_QUINT8
    for node in readers:
        node.attr["Tinput"].type = types_pb2.DT_QUINT8


def fake_quantize_float_inputs(graph_def: graph_pb2.GraphDef, ops: Sequence[str],
                               ranges: Mapping[str, Range]) -> graph_pb2.GraphDef:
    """`graph_def` with the ranged data input of each of `ops` (convolutions and
    matmuls kept in float32) fake-quantized again, as the QAT graph computed them: the
    bypassed node clamped and rounded their input, which an int8 op does itself."""
    restored = graph_pb2.GraphDef()
    restored.CopyFrom(graph_def)
    wanted = set(ops)
    for node in list(restored.node):
        if node.name not in wanted or _tensor(node.input[0]) not in ranges:
            continue
        low, high = ranges[_tensor(node.input[0])]
        quantized = restored.node.add(name=f"{node.name}/fake_quant_input",
                                      op="FakeQuantWithMinMaxArgs", input=[node.input[0]])
        quantized.attr["min"].f, quantized.attr["max"].f = low, high
        quantized.attr["num_bits"].i = 8
        quantized.attr["narrow_range"].b = False
        node.input[0] = quantized.name
    return restored


def within_ranges(feeds: Sequence[Mapping[str, np.ndarray]], ranges: Mapping[str, Range],
                  seed: int = 0) -> list[dict[str, np.ndarray]]:
    """`feeds` (by input tensor name, "op:0") with each float input the fake-quant
    nodes give a range drawn uniformly from it: the rewrite's sampling run then sees
    the signs QAT saw, which decide its signed or unsigned int8 types."""
    rng = np.random.default_rng(seed)
    ranged = []
    for feed in feeds:
        ranged.append({name: rng.uniform(*ranges[_tensor(name)], size=value.shape).astype(
            value.dtype) if value.dtype.kind == "f" and _tensor(name) in ranges else value
            for name, value in feed.items()})
    return ranged

"""Put a frozen graph into the shapes TensorFlow's own optimizers fuse.

Grappler's remapper (and with oneDNN, its layout pass) fuses a convolution or
matmul with its bias and activation only when the bias is a `BiasAdd` straight
after the contraction. Freezing Keras 3's decomposed batch norm leaves a `Mul`
by a per-channel scale and an `AddV2` of a per-channel shift there instead, and
a separate `Pad` before strided convolutions (DESIGN fact 20), and Keras's swish
hides its ``x * sigmoid(x)`` behind a `Mul` by one and an `IdentityN`. The passes
here fold the scale into the constant filter, turn the shifts into one `BiasAdd`,
bypass what only passes values through, and let the convolution pad, so that the
Session TF Serving runs fuses them. A `Pad` that is exactly what ``padding="SAME"``
would add goes into any convolution (Keras's ``correct_pad`` before MobileNet's and
EfficientNet's strided depthwise convolutions is); another zero `Pad` goes into a
`Conv2D` as explicit padding. And a Reshape gets the constant shape that shape
inference knows, instead of the ops that compute it on every call.

Each pass is one rewrite over a `_Graph`; a node that is protected (a signature
input or output, a main op) keeps its name and its meaning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2, types_pb2
from tensorflow.python.framework import op_def_registry

from converter.graph.names import (
    data_inputs,
    is_control_input,
    op_name,
    output_port,
    tensor_name,
)

_FLOAT = types_pb2.DT_FLOAT
# Contractions the remapper fuses with a BiasAdd and an activation; the output
# channel is the last axis (NHWC, or a matmul's columns).
_CONVOLUTIONS = frozenset({"Conv2D", "DepthwiseConv2dNative"})
_CONTRACTIONS = _CONVOLUTIONS | {"MatMul"}
_RANK = {"Conv2D": 4, "DepthwiseConv2dNative": 4, "MatMul": 2}
_ADDS = frozenset({"Add", "AddV2", "Sub", "BiasAdd"})
# Pure elementwise and shape ops whose value is known once their inputs are
# constants: what freezing leaves of batch norm (Rsqrt(var + eps) * gamma ...) and
# of Keras's bias reshapes. Nothing here can make a tensor larger than broadcasting.
_FOLDABLE = frozenset({"Add", "AddV2", "Sub", "Mul", "RealDiv", "Rsqrt", "Sqrt",
                       "Reciprocal", "Neg", "Square", "Maximum", "Minimum", "Identity",
                       "Reshape", "Squeeze", "ExpandDims", "Cast"})
# The convolutions a constant zero Pad merges into (padding="EXPLICIT"); the remapper
# still fuses them, with oneDNN and without. DepthwiseConv2dNative accepts EXPLICIT
# too, but with oneDNN on, Grappler aborts the process on it (TF 2.21, tensor_format.h
# "Invalid index from the dimension"), so its Pad stays unless it is SAME's padding.
_EXPLICIT_PADDING = frozenset({"Conv2D"})


class _InferredShapes:
    """TensorFlow's own shape inference over the graph as it came in, imported on first
    use. The passes keep every tensor's shape, and ask only of tensors that were there."""

    def __init__(self, graph_def: graph_pb2.GraphDef) -> None:
        self._graph_def = graph_def
        self._graph: tf.Graph | None = None
        self._failed = False

    def of(self, graph_input: str) -> tf.TensorShape | None:
        """The static shape of a data input's tensor; None if it cannot be inferred."""
        if self._graph is None and not self._failed:
            with tf.Graph().as_default() as graph:
                try:
                    tf.graph_util.import_graph_def(self._graph_def, name="")
                    self._graph = graph
                except (ValueError, tf.errors.OpError):
                    self._failed = True  # an op this process cannot import: nothing known
        if self._graph is None:
            return None
        try:
            return self._graph.get_tensor_by_name(tensor_name(graph_input)).shape
        except (KeyError, ValueError):
            return None


@dataclasses.dataclass
class _Graph:
    """A GraphDef being rewritten: its nodes by name, in order."""

    nodes: dict[str, node_def_pb2.NodeDef]
    protected: frozenset[str]
    shapes: _InferredShapes

    def consumers(self) -> dict[str, list[node_def_pb2.NodeDef]]:
        """Node name -> every node that takes one of its outputs or waits on it."""
        found: dict[str, list[node_def_pb2.NodeDef]] = {name: [] for name in self.nodes}
        for node in self.nodes.values():
            for graph_input in node.input:
                found.setdefault(op_name(graph_input), []).append(node)
        return found

    def constant(self, graph_input: str) -> np.ndarray | None:
        """The value of a data input that is a Const node's output, else None."""
        node = self.nodes.get(op_name(graph_input))
        if node is None or node.op != "Const" or is_control_input(graph_input):
            return None
        return np.asarray(tf.make_ndarray(node.attr["value"].tensor))

    def add_constant(self, base: str, value: np.ndarray) -> str:
        """A new Const node holding `value`, named after `base`; its name."""
        name, suffix = base, 0
        while name in self.nodes:
            suffix += 1
            name = f"{base}_{suffix}"
        node = node_def_pb2.NodeDef(name=name, op="Const")
        node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        self.nodes[name] = node
        return name

    def remove(self, name: str) -> None:
        """Drop `name` and then every input it leaves unused, unless protected or stateful."""
        stack = [name]
        while stack:
            current = stack.pop()
            node = self.nodes.get(current)
            if node is None or current in self.protected or _is_stateful(node.op):
                continue
            consumers = self.consumers()
            if consumers.get(current):
                continue
            del self.nodes[current]
            stack.extend(op_name(i) for i in node.input)

    def graph_def(self, like: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
        """The rewritten graph, with `like`'s versions and function library."""
        result = graph_pb2.GraphDef()
        result.versions.CopyFrom(like.versions)
        result.library.CopyFrom(like.library)
        result.node.extend(self.nodes.values())
        return result


def _present(graph: _Graph, node: node_def_pb2.NodeDef) -> bool:
    """Whether `node` is still in the graph under its name (a pass removed or renamed
    nodes it had listed)."""
    return graph.nodes.get(node.name) is node


def _is_stateful(op: str) -> bool:
    op_def = op_def_registry.get(op)
    return op_def is None or op_def.is_stateful


@dataclasses.dataclass(frozen=True)
class _ChannelTensor:
    """A contraction's output, possibly through its BiasAdd: C values per position."""

    contraction: node_def_pb2.NodeDef
    bias_add: node_def_pb2.NodeDef | None
    channels: int
    rank: int


def _channel_tensor(graph: _Graph, graph_input: str) -> _ChannelTensor | None:
    """What `graph_input` is if it is a float NHWC contraction with a constant
    filter, or such a contraction's constant BiasAdd."""
    if not _first_output(graph_input):
        return None
    node = graph.nodes.get(op_name(graph_input))
    bias_add = None
    if node is not None and node.op == "BiasAdd" and _is_nhwc(node):
        if graph.constant(node.input[1]) is None:
            return None
        bias_add, node = node, graph.nodes.get(op_name(node.input[0]))
        if not _first_output(bias_add.input[0]):
            return None
    if node is None or node.op not in _CONTRACTIONS or node.attr["T"].type != _FLOAT:
        return None
    if node.op in _CONVOLUTIONS and not _is_nhwc(node):
        return None
    weights = graph.constant(node.input[1])
    if weights is None:
        return None
    if node.op == "Conv2D":
        channels = weights.shape[3]
    elif node.op == "DepthwiseConv2dNative":
        channels = weights.shape[2] * weights.shape[3]
    else:
        channels = weights.shape[0] if node.attr["transpose_b"].b else weights.shape[1]
    return _ChannelTensor(node, bias_add, int(channels), _RANK[node.op])


def _first_output(graph_input: str) -> bool:
    """Whether a GraphDef input is a node's output 0 (every op folded here has one)."""
    return not is_control_input(graph_input) and (
        ":" not in graph_input or graph_input.endswith(":0"))


def _is_nhwc(node: node_def_pb2.NodeDef) -> bool:
    return "data_format" not in node.attr or node.attr["data_format"].s == b"NHWC"


def _per_channel(value: np.ndarray | None, tensor: _ChannelTensor) -> np.ndarray | None:
    """`value` as C float32 values if broadcasting it against the channel tensor
    applies one value per channel (shape [C], [1, ..., 1, C] or a scalar)."""
    if value is None or value.dtype != np.float32 or value.ndim > tensor.rank:
        return None
    if any(d != 1 for d in value.shape[:-1]) or (
            value.ndim and value.shape[-1] not in (1, tensor.channels)):
        return None
    return np.broadcast_to(value.reshape(-1), (tensor.channels,)).astype(np.float32)


def _only_consumer(consumers: dict[str, list[node_def_pb2.NodeDef]], name: str,
                   consumer: node_def_pb2.NodeDef) -> bool:
    return [c.name for c in consumers[name]] == [consumer.name]


def _scaled_filter(contraction: node_def_pb2.NodeDef, weights: np.ndarray,
                   scale: np.ndarray) -> np.ndarray:
    """The filter of `contraction` with output channel c multiplied by scale[c]."""
    if contraction.op == "DepthwiseConv2dNative":  # channel c = input c // M, multiplier c % M
        return weights * scale.reshape(weights.shape[2], weights.shape[3])
    if contraction.op == "MatMul" and contraction.attr["transpose_b"].b:
        return weights * scale[:, None]
    return weights * scale


def _nonzero(bias: np.ndarray) -> np.ndarray:
    """`bias`, or if it is all zeros the smallest normal float32 (1.2e-38) instead.
    Grappler drops a BiasAdd of zeros, and then the remapper has no bias to fuse the
    activation with (Keras's initial batch norm shifts are zeros). A denormal would
    not do: Grappler folds constants with denormals flushed to zero. Added to any
    value but a zero, 1.2e-38 changes nothing in float32."""
    return bias if bias.any() else np.full_like(bias, np.finfo(np.float32).tiny)


def _make_bias_add(graph: _Graph, node: node_def_pb2.NodeDef, value: str,
                   bias: np.ndarray) -> None:
    """Turn `node` (keeping its name and control inputs) into BiasAdd(value, bias)."""
    control = [i for i in node.input if is_control_input(i)]
    constant = graph.add_constant(f"{node.name}/bias", _nonzero(bias.astype(np.float32)))
    node.op = "BiasAdd"
    node.attr.clear()
    node.attr["T"].type = _FLOAT
    node.attr["data_format"].s = b"NHWC"
    del node.input[:]
    node.input.extend([value, constant, *control])


def fold_constants(graph: _Graph) -> int:
    """Replace every foldable node whose inputs are all constants by a Const of its
    value (same name); how many. Batch norm's scale and shift become constants here."""
    foldable: dict[str, node_def_pb2.NodeDef] = {}
    for node in _topological(graph):
        if (node.op in _FOLDABLE and node.name not in graph.protected
                and node.input and not any(is_control_input(i) for i in node.input)
                and all(graph.nodes[op_name(i)].op == "Const" or op_name(i) in foldable
                        for i in node.input)
                and all(map(_first_output, node.input))):
            foldable[node.name] = node
    if not foldable:
        return 0
    subgraph = graph_pb2.GraphDef()
    needed = {op_name(i) for node in foldable.values() for i in node.input} | set(foldable)
    subgraph.node.extend(n for n in graph.nodes.values() if n.name in needed)
    with tf.Graph().as_default() as evaluation:
        tf.graph_util.import_graph_def(subgraph, name="")
        with tf.compat.v1.Session(graph=evaluation) as session:
            values = session.run({name: f"{name}:0" for name in foldable})
    folded = 0
    for name, value in values.items():
        array = np.asarray(value)
        node = graph.nodes.get(name)
        if node is None or array.dtype.kind not in "fiu":
            continue  # removed as the input of a node folded before it; or a string
        inputs = list(node.input)
        node.op = "Const"
        node.attr.clear()
        del node.input[:]
        node.attr["dtype"].type = tf.as_dtype(array.dtype).as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(array))
        folded += 1
        for graph_input in inputs:
            graph.remove(op_name(graph_input))
    return folded


def scales_into_filters(graph: _Graph) -> int:
    """Mul(contraction [+ BiasAdd], per-channel constant) -> the contraction with
    the scale folded into its constant filter (and bias); how many folded."""
    folded = 0
    for node in list(graph.nodes.values()):
        if node.op != "Mul" or not _present(graph, node):
            continue
        consumers = graph.consumers()
        for position, graph_input in enumerate(data_inputs(node.input)[:2]):
            tensor = _channel_tensor(graph, graph_input)
            other = data_inputs(node.input)[1 - position]
            scale = _per_channel(graph.constant(other), tensor) if tensor else None
            if tensor is None or scale is None:
                continue
            contraction, bias_add = tensor.contraction, tensor.bias_add
            chain: list[node_def_pb2.NodeDef] = [contraction]
            if bias_add is not None:
                chain.append(bias_add)
            if any(n.name in graph.protected for n in chain) or not all(
                    _only_consumer(consumers, n.name, after)
                    for n, after in zip(chain, [*chain[1:], node], strict=True)):
                continue
            filter_name = op_name(contraction.input[1])
            if filter_name in graph.protected or not _only_consumer(
                    consumers, filter_name, contraction):
                continue
            weights = graph.constant(contraction.input[1])
            assert weights is not None
            contraction.input[1] = graph.add_constant(
                f"{contraction.name}/scaled_filter", _scaled_filter(contraction, weights, scale))
            graph.remove(filter_name)
            if bias_add is not None:
                bias = graph.constant(bias_add.input[1])
                assert bias is not None
                old_bias = op_name(bias_add.input[1])
                _make_bias_add(graph, node, contraction.name, bias * scale)
                del graph.nodes[bias_add.name]
                graph.remove(old_bias)
            else:
                # The contraction takes the Mul's name: nothing else reads it.
                control = [i for i in node.input if is_control_input(i)]
                del graph.nodes[node.name], graph.nodes[contraction.name]
                contraction.name = node.name
                contraction.input.extend(control)
                graph.nodes[node.name] = contraction
            graph.remove(op_name(other))
            folded += 1
            break
    return folded


def adds_into_bias_adds(graph: _Graph) -> int:
    """Add/AddV2/Sub of a per-channel constant on a contraction's output -> a BiasAdd,
    merged into the BiasAdd already there; how many rewritten."""
    rewritten = 0
    for node in list(graph.nodes.values()):
        if node.op not in _ADDS or not _present(graph, node):
            continue
        inputs = data_inputs(node.input)
        # Sub(x, c) is x + (-c); c - x is no bias, and BiasAdd's value is input 0.
        positions = [0] if node.op in ("Sub", "BiasAdd") else [0, 1]
        for position in positions:
            tensor = _channel_tensor(graph, inputs[position])
            other = inputs[1 - position]
            shift = _per_channel(graph.constant(other), tensor) if tensor else None
            if tensor is None or shift is None:
                continue
            if node.op == "BiasAdd" and tensor.bias_add is None:
                if not shift.any():  # already what the remapper wants, unless zeros
                    _make_bias_add(graph, node, inputs[0], shift)
                    graph.remove(op_name(other))
                    rewritten += 1
                break
            if node.op == "Sub":
                shift = -shift
            bias_add = tensor.bias_add
            consumers = graph.consumers()
            if (bias_add is not None and bias_add.name not in graph.protected
                    and _only_consumer(consumers, bias_add.name, node)):
                bias = graph.constant(bias_add.input[1])
                assert bias is not None
                old_bias = op_name(bias_add.input[1])
                _make_bias_add(graph, node, tensor.contraction.name, bias + shift)
                del graph.nodes[bias_add.name]
                graph.remove(old_bias)
            elif bias_add is not None:
                continue  # another op reads the first BiasAdd: leave both
            else:
                _make_bias_add(graph, node, tensor.contraction.name, shift)
            graph.remove(op_name(other))
            rewritten += 1
            break
    return rewritten


def pass_throughs_removed(graph: _Graph) -> int:
    """Bypass each node whose outputs are its inputs unchanged; how many.

    Keras's swish is ``x * sigmoid(1.0 * x)`` inside `tf.custom_gradient`, which
    leaves an `IdentityN` of ``(x * sigmoid(..), x, 1.0)`` after it. Between a
    contraction's BiasAdd and its swish, the `Mul` by a scalar 1.0 and the
    `IdentityN` hide the ``Mul(x, Sigmoid(x))`` that the remapper fuses into the
    convolution (``_FusedConv2D[BiasAdd,_MklSwish]`` with oneDNN). A float32 product
    with a scalar one is its other operand exactly, so nothing changes but the graph.
    """
    bypassed = 0
    for node in list(graph.nodes.values()):
        if not _present(graph, node) or node.name in graph.protected or any(
                map(is_control_input, node.input)):
            continue
        outputs = _pass_through_outputs(graph, node)
        if outputs is None:
            continue
        consumers = graph.consumers().get(node.name, [])
        if any(f"^{node.name}" in c.input for c in consumers):
            continue
        for consumer in consumers:
            for position, graph_input in enumerate(consumer.input):
                if op_name(graph_input) == node.name:
                    consumer.input[position] = outputs[output_port(graph_input)]
        graph.remove(node.name)
        bypassed += 1
    return bypassed


def _pass_through_outputs(graph: _Graph, node: node_def_pb2.NodeDef) -> list[str] | None:
    """The inputs that `node`'s outputs equal, by output port, if it passes them through."""
    if node.op == "IdentityN":
        return list(node.input)
    if node.op == "Mul" and node.attr["T"].type == _FLOAT:
        for position, graph_input in enumerate(node.input):
            value = graph.constant(graph_input)
            if value is not None and value.shape == () and value == 1.0:
                return [node.input[1 - position]]
    return None


def reshapes_to_constant_shapes(graph: _Graph) -> int:
    """Reshape(x, a shape computed at run time) -> Reshape(x, a constant shape) where
    TensorFlow's shape inference knows every dimension of the result but at most one
    (that one becomes -1); how many.

    Keras's Reshape layer computes its target from its input's batch size:
    ``Shape -> StridedSlice -> Pack`` before every Reshape, four ops a call where one
    does (EfficientNet's squeeze-and-excitation blocks have sixteen). The result has
    the shape inference guarantees, and -1 takes the one size it leaves open."""
    rewritten = 0
    for node in list(graph.nodes.values()):
        if (node.op != "Reshape" or not _present(graph, node)
                or graph.constant(node.input[1]) is not None):
            continue
        shape = graph.shapes.of(node.name)
        if shape is None or shape.rank is None:
            continue
        dims = [-1 if d is None else d for d in shape.as_list()]
        if dims.count(-1) > 1:
            continue
        old_shape = node.input[1]
        dtype = tf.as_dtype(node.attr["Tshape"].type).as_numpy_dtype
        node.input[1] = graph.add_constant(f"{node.name}/shape", np.asarray(dims, dtype))
        graph.remove(op_name(old_shape))
        rewritten += 1
    return rewritten


def _spatial_zero_pad(graph: _Graph, node: node_def_pb2.NodeDef
                      ) -> tuple[node_def_pb2.NodeDef, np.ndarray] | None:
    """The Pad before convolution `node` and its (4, 2) paddings, if it only adds zeros
    around height and width (no cropping) and `node` reads nothing else of it."""
    if node.op not in _CONVOLUTIONS or not _is_nhwc(node):
        return None
    pad = graph.nodes.get(op_name(node.input[0]))
    if (node.attr["padding"].s not in (b"VALID", b"EXPLICIT") or pad is None
            or pad.op not in ("Pad", "PadV2") or pad.name in graph.protected
            or not _first_output(node.input[0])):
        return None
    pads = graph.constant(pad.input[1])
    if pads is None or pads.shape != (4, 2) or pads[0].any() or pads[3].any() or (
            pads < 0).any():
        return None
    fill = graph.constant(pad.input[2]) if pad.op == "PadV2" else np.zeros(())
    if fill is None or fill.any():
        return None
    return pad, pads


def _bypass_pad(graph: _Graph, node: node_def_pb2.NodeDef, pad: node_def_pb2.NodeDef) -> None:
    node.input[0] = pad.input[0]
    graph.remove(pad.name)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """What ``padding="SAME"`` adds before and after one spatial axis of `size`
    (TensorFlow's rule: the output is ceil(size / stride); the odd one goes after)."""
    extent = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def _is_same_padding(node: node_def_pb2.NodeDef, pads: np.ndarray,
                     spatial: tuple[int | None, int | None], filter_shape: tuple[int, ...]
                     ) -> bool:
    strides = list(node.attr["strides"].list.i) or [1] * 4
    dilations = list(node.attr["dilations"].list.i) or [1] * 4
    return all(size is not None and tuple(pads[axis]) == _same_padding(
        size, filter_shape[axis - 1], strides[axis], dilations[axis])
        for axis, size in zip((1, 2), spatial, strict=True))


def pads_as_same_padding(graph: _Graph) -> int:
    """Conv(Pad(x), padding="VALID") -> Conv(x, padding="SAME") where x's height and
    width are known and the Pad adds exactly what SAME would; how many merged.

    Keras pads before a strided convolution (``correct_pad``: one row and column after,
    for a 3x3 kernel over an even size) to match SAME's result on every input size.
    For the sizes the graph fixes, it *is* SAME's padding, which every convolution
    takes: the depthwise ones too, and the int8 kernels, which refuse EXPLICIT."""
    merged = 0
    for node in list(graph.nodes.values()):
        found = _spatial_zero_pad(graph, node)
        filter_value = graph.constant(node.input[1]) if found else None
        if found is None or node.attr["padding"].s != b"VALID" or filter_value is None:
            continue
        pad, pads = found
        shape = graph.shapes.of(pad.input[0])
        spatial = (shape[1], shape[2]) if shape is not None and shape.rank == 4 else (
            None, None)
        if _is_same_padding(node, pads, spatial, filter_value.shape):
            node.attr["padding"].s = b"SAME"
            _bypass_pad(graph, node, pad)
            merged += 1
    return merged


def pads_into_convolutions(graph: _Graph) -> int:
    """Conv2D(Pad(x, constant spatial zero padding)) -> Conv2D(x, padding="EXPLICIT");
    how many merged."""
    merged = 0
    for node in list(graph.nodes.values()):
        found = _spatial_zero_pad(graph, node) if node.op in _EXPLICIT_PADDING else None
        if found is None:
            continue
        pad, pads = found
        existing = list(node.attr["explicit_paddings"].list.i) or [0] * 8
        node.attr["padding"].s = b"EXPLICIT"
        node.attr["explicit_paddings"].list.i[:] = [
            int(a + b) for a, b in zip(existing, pads.reshape(-1), strict=True)]
        _bypass_pad(graph, node, pad)
        merged += 1
    return merged


def _topological(graph: _Graph) -> list[node_def_pb2.NodeDef]:
    """The nodes, each after every node it takes an input from (cycles, which only
    loops have, leave their nodes out: nothing there is folded)."""
    waiting = {name: {op_name(i) for i in node.input} & graph.nodes.keys()
               for name, node in graph.nodes.items()}
    consumers = graph.consumers()
    ready = [name for name, inputs in waiting.items() if not inputs]
    order = []
    while ready:
        name = ready.pop()
        order.append(graph.nodes[name])
        for consumer in consumers[name]:
            pending = waiting[consumer.name]
            if name in pending:
                pending.discard(name)
                if not pending:
                    ready.append(consumer.name)
    return order


def fold_for_fusion(graph_def: graph_pb2.GraphDef,
                    protected_node_names: Iterable[str]) -> graph_pb2.GraphDef:
    """`graph_def` (frozen: weights are Const nodes) rewritten so Grappler's remapper
    fuses each convolution and matmul with its bias and activation. Nodes named in
    `protected_node_names` (signature inputs and outputs, a main op) keep their name
    and value; the outputs equal the input's up to float32 rounding."""
    graph = _Graph(nodes={n.name: _copy(n) for n in graph_def.node},
                   protected=frozenset(protected_node_names),
                   shapes=_InferredShapes(graph_def))
    fold_constants(graph)
    pass_throughs_removed(graph)
    while scales_into_filters(graph) + adds_into_bias_adds(graph):
        pass  # a fold can expose the next: Mul after BiasAdd after Mul
    pads_as_same_padding(graph)
    pads_into_convolutions(graph)
    reshapes_to_constant_shapes(graph)
    return graph.graph_def(graph_def)


def _copy(node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef:
    copy = node_def_pb2.NodeDef()
    copy.CopyFrom(node)
    return copy

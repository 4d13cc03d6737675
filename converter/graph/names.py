"""Names in a GraphDef: a node's input is "op", "op:1" (a data input) or "^op" (a
control input); a tensor is "op:0". Every reading of them goes through here."""

from __future__ import annotations

from collections.abc import Iterable


def op_name(name: str) -> str:
    """The node a tensor name or GraphDef input refers to ("^op", "op:1" -> "op")."""
    return name.lstrip("^").split(":")[0]


def is_control_input(graph_def_input: str) -> bool:
    """Whether a GraphDef input is a control dependency ("^op")."""
    return graph_def_input.startswith("^")


def tensor_name(graph_def_input: str) -> str:
    """A GraphDef data input ("op" or "op:1") as a tensor name ("op:0", "op:1")."""
    return graph_def_input if ":" in graph_def_input else f"{graph_def_input}:0"


def output_port(graph_def_input: str) -> int:
    """The output a GraphDef data input reads ("op" -> 0, "op:2" -> 2)."""
    return int(graph_def_input.split(":")[1]) if ":" in graph_def_input else 0


def data_inputs(inputs: Iterable[str]) -> list[str]:
    """A node's GraphDef inputs without its control inputs ("^op")."""
    return [i for i in inputs if not is_control_input(i)]

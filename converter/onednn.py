"""Whether oneDNN runs TensorFlow's CPU kernels in this process, and how a child
process gets it.

TensorFlow decides once, at start: oneDNN is on by default only on CPUs with VNNI,
BF16 or AMX, else as `TF_ENABLE_ONEDNN_OPTS` says. Its int8 kernels run only with it
on, and a model is served as fast as it was measured only where TF Serving decides
the same way, so the variable must be set alike for the converter and TF Serving.
"""

from __future__ import annotations

from typing import Final

ONEDNN_VARIABLE: Final = "TF_ENABLE_ONEDNN_OPTS"

ONEDNN_ON: Final = {ONEDNN_VARIABLE: "1"}
"""A child's environment on top of ours, for work that needs oneDNN whatever this
process has (Grappler offers its bfloat16 rewrite only with oneDNN on)."""


def onednn_enabled() -> bool:
    """Whether this process runs TensorFlow's CPU kernels through oneDNN."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())

"""TF-TRT's converter API on current TensorFlow, with XLA-compiled engines.

Port TF-TRT code by changing one import::

    from converter import TrtGraphConverterV2, TrtConversionParams, TrtPrecisionMode

This module is the converter's public API: the sidecar, the benchmarks and the tests'
servers use the converter only through the names below (an import-linter contract holds
the sidecar to it), plus ``converter.console``, the command-line plumbing the light admin
client shares. Everything else (``converter.xla``, ``converter.serving``, ...) is internal
and may move. Durable file writes are not the converter's: they live in the ``durable``
package, which the converter and the sidecar both use.

Names are loaded on first use (PEP 562), so importing the package, or
``converter.console``, does not load TensorFlow; ``from converter import Converter`` does,
while ``ONEDNN_VARIABLE``, the errors and the demo model's shape do not.

The package, top down: ``cli`` and ``demo`` (the ``tftrt`` command); ``converter`` (the
``Converter``); one folder per conversion path (``xla``, ``tensorrt``, ``tf1``);
``savedmodel`` (load, inputs, save, install engines); ``report``; ``candidates`` (measure
and choose) and ``precision`` (bfloat16 and int8 rewrites); ``serving`` (the TF1 Session
path, its child processes and the measures they compare by); ``graph`` (flatten, freeze,
fold), ``device`` and ``backend``; ``params``, ``onednn``, ``errors`` and ``console``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from converter.converter import Converter
    from converter.demo import DEMO_INPUT, DEMO_SEQUENCE, build_demo_model
    from converter.device import BuildDevice, detect_build_device, engine_namespace
    from converter.errors import (
        BackendUnavailableError,
        ConverterError,
        ConverterStateError,
        EngineExportError,
        InputFnError,
        InvalidParameterError,
        OutputExistsError,
        SavedModelError,
        UnsupportedModelError,
    )
    from converter.onednn import ONEDNN_VARIABLE, onednn_enabled
    from converter.params import BACKENDS, TOLERANCE, ConversionParams, TrtPrecisionMode
    from converter.report import ConversionReport
    from converter.savedmodel.engine_cache import InstallResult, install_engines
    from converter.savedmodel.loading import read_meta_graph
    from converter.savedmodel.synthetic import batch_input_fn, synthetic_input_fn
    from converter.serving.measuring import scaled_error
    from converter.serving.session import ServingSession, graph_input_specs

    TrtGraphConverterV2 = Converter
    TrtConversionParams = ConversionParams
    DEFAULT_TRT_CONVERSION_PARAMS: ConversionParams

_WHERE: dict[str, tuple[str, str]] = {
    "BuildDevice": ("converter.device", "BuildDevice"),
    "detect_build_device": ("converter.device", "detect_build_device"),
    "engine_namespace": ("converter.device", "engine_namespace"),
    "BACKENDS": ("converter.params", "BACKENDS"),
    "TOLERANCE": ("converter.params", "TOLERANCE"),
    "ConversionParams": ("converter.params", "ConversionParams"),
    "TrtConversionParams": ("converter.params", "ConversionParams"),
    "TrtPrecisionMode": ("converter.params", "TrtPrecisionMode"),
    "Converter": ("converter.converter", "Converter"),
    "TrtGraphConverterV2": ("converter.converter", "Converter"),
    "ConversionReport": ("converter.report", "ConversionReport"),
    "BackendUnavailableError": ("converter.errors", "BackendUnavailableError"),
    "ConverterError": ("converter.errors", "ConverterError"),
    "ConverterStateError": ("converter.errors", "ConverterStateError"),
    "EngineExportError": ("converter.errors", "EngineExportError"),
    "InputFnError": ("converter.errors", "InputFnError"),
    "InvalidParameterError": ("converter.errors", "InvalidParameterError"),
    "OutputExistsError": ("converter.errors", "OutputExistsError"),
    "SavedModelError": ("converter.errors", "SavedModelError"),
    "UnsupportedModelError": ("converter.errors", "UnsupportedModelError"),
    "InstallResult": ("converter.savedmodel.engine_cache", "InstallResult"),
    "install_engines": ("converter.savedmodel.engine_cache", "install_engines"),
    "read_meta_graph": ("converter.savedmodel.loading", "read_meta_graph"),
    "batch_input_fn": ("converter.savedmodel.synthetic", "batch_input_fn"),
    "synthetic_input_fn": ("converter.savedmodel.synthetic", "synthetic_input_fn"),
    "ServingSession": ("converter.serving.session", "ServingSession"),
    "graph_input_specs": ("converter.serving.session", "graph_input_specs"),
    "scaled_error": ("converter.serving.measuring", "scaled_error"),
    "ONEDNN_VARIABLE": ("converter.onednn", "ONEDNN_VARIABLE"),
    "onednn_enabled": ("converter.onednn", "onednn_enabled"),
    "DEMO_INPUT": ("converter.demo", "DEMO_INPUT"),
    "DEMO_SEQUENCE": ("converter.demo", "DEMO_SEQUENCE"),
    "build_demo_model": ("converter.demo", "build_demo_model"),
}
"""Each public name: the module defining it and its name there (aliases included)."""


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_TRT_CONVERSION_PARAMS":
        # Through the table, not an import statement: the package imports no module of
        # its own until a name is used, which is what keeps it light.
        value: Any = __getattr__("ConversionParams")()
    elif name in _WHERE:
        module, attribute = _WHERE[name]
        value = getattr(importlib.import_module(module), attribute)
    else:
        raise AttributeError(f"module 'converter' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


__all__ = [
    "BACKENDS",
    "DEFAULT_TRT_CONVERSION_PARAMS",
    "DEMO_INPUT",
    "DEMO_SEQUENCE",
    "ONEDNN_VARIABLE",
    "TOLERANCE",
    "BackendUnavailableError",
    "BuildDevice",
    "ConversionParams",
    "ConversionReport",
    "Converter",
    "ConverterError",
    "ConverterStateError",
    "EngineExportError",
    "InputFnError",
    "InstallResult",
    "InvalidParameterError",
    "OutputExistsError",
    "SavedModelError",
    "ServingSession",
    "TrtConversionParams",
    "TrtGraphConverterV2",
    "TrtPrecisionMode",
    "UnsupportedModelError",
    "batch_input_fn",
    "build_demo_model",
    "detect_build_device",
    "engine_namespace",
    "graph_input_specs",
    "install_engines",
    "onednn_enabled",
    "read_meta_graph",
    "scaled_error",
    "synthetic_input_fn",
]

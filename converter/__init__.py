"""TF-TRT's converter API on current TensorFlow, with XLA-compiled engines.

Port TF-TRT code by changing one import::

    from converter import TrtGraphConverterV2, TrtConversionParams, TrtPrecisionMode

Names are loaded on first use (PEP 562), so importing the package, or a light module of
it such as ``converter.console``, does not load TensorFlow; ``from converter import
Converter`` does. The durable file operations (``write_atomically``, ``write_new``,
``fsync_tree``, ``rename_no_replace``, ...) are light too; the sidecar writes through them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from converter.backends.device import BuildDevice, detect_build_device, engine_namespace
    from converter.converter import Converter
    from converter.engine_cache import InstallResult, install_engines
    from converter.engine_timing import scaled_error
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
    from converter.files import (
        fsync_directory,
        fsync_tree,
        rename_no_replace,
        temporary_prefix,
        write_atomically,
        write_new,
    )
    from converter.loading import graph_input_specs
    from converter.params import BACKENDS, TOLERANCE, ConversionParams, TrtPrecisionMode
    from converter.report import ConversionReport
    from converter.serving_session import ServingSession

    TrtGraphConverterV2 = Converter
    TrtConversionParams = ConversionParams
    DEFAULT_TRT_CONVERSION_PARAMS: ConversionParams

_WHERE: dict[str, tuple[str, str]] = {
    "BuildDevice": ("converter.backends.device", "BuildDevice"),
    "detect_build_device": ("converter.backends.device", "detect_build_device"),
    "engine_namespace": ("converter.backends.device", "engine_namespace"),
    "BACKENDS": ("converter.params", "BACKENDS"),
    "TOLERANCE": ("converter.params", "TOLERANCE"),
    "Converter": ("converter.converter", "Converter"),
    "TrtGraphConverterV2": ("converter.converter", "Converter"),
    "InstallResult": ("converter.engine_cache", "InstallResult"),
    "install_engines": ("converter.engine_cache", "install_engines"),
    "scaled_error": ("converter.engine_timing", "scaled_error"),
    "BackendUnavailableError": ("converter.errors", "BackendUnavailableError"),
    "ConverterError": ("converter.errors", "ConverterError"),
    "ConverterStateError": ("converter.errors", "ConverterStateError"),
    "EngineExportError": ("converter.errors", "EngineExportError"),
    "InputFnError": ("converter.errors", "InputFnError"),
    "InvalidParameterError": ("converter.errors", "InvalidParameterError"),
    "OutputExistsError": ("converter.errors", "OutputExistsError"),
    "SavedModelError": ("converter.errors", "SavedModelError"),
    "UnsupportedModelError": ("converter.errors", "UnsupportedModelError"),
    "fsync_directory": ("converter.files", "fsync_directory"),
    "fsync_tree": ("converter.files", "fsync_tree"),
    "rename_no_replace": ("converter.files", "rename_no_replace"),
    "temporary_prefix": ("converter.files", "temporary_prefix"),
    "write_atomically": ("converter.files", "write_atomically"),
    "write_new": ("converter.files", "write_new"),
    "graph_input_specs": ("converter.loading", "graph_input_specs"),
    "ConversionParams": ("converter.params", "ConversionParams"),
    "TrtConversionParams": ("converter.params", "ConversionParams"),
    "TrtPrecisionMode": ("converter.params", "TrtPrecisionMode"),
    "ConversionReport": ("converter.report", "ConversionReport"),
    "ServingSession": ("converter.serving_session", "ServingSession"),
}
"""Each public name: the module defining it and its name there (aliases included)."""


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_TRT_CONVERSION_PARAMS":
        from converter.params import ConversionParams

        value: Any = ConversionParams()
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
    "detect_build_device",
    "engine_namespace",
    "fsync_directory",
    "fsync_tree",
    "graph_input_specs",
    "install_engines",
    "rename_no_replace",
    "scaled_error",
    "temporary_prefix",
    "write_atomically",
    "write_new",
]

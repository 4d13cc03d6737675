"""TF-TRT's converter API on current TensorFlow, with XLA-compiled engines.

Port TF-TRT code by changing one import::

    from converter import TrtGraphConverterV2, TrtConversionParams, TrtPrecisionMode
"""

from __future__ import annotations

from converter.backends.device import BuildDevice, detect_build_device, engine_namespace
from converter.converter import TOLERANCE, Converter
from converter.engine_cache import InstallResult, install_engines
from converter.engines import scaled_error
from converter.errors import (
    BackendUnavailableError,
    ConverterError,
    ConverterStateError,
    EngineExportError,
    InputFnError,
    InvalidParameterError,
    OutputExistsError,
    SavedModelError,
)
from converter.params import ConversionParams, TrtPrecisionMode
from converter.report import ConversionReport

TrtGraphConverterV2 = Converter
TrtConversionParams = ConversionParams
DEFAULT_TRT_CONVERSION_PARAMS = ConversionParams()

__all__ = [
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
    "TrtConversionParams",
    "TrtGraphConverterV2",
    "TrtPrecisionMode",
    "detect_build_device",
    "engine_namespace",
    "install_engines",
    "scaled_error",
]

"""The converter's errors.

Each subclasses the built-in type TF-TRT raises in the same place, so code
written against TF-TRT keeps catching what it caught before. Messages say
what was wrong, where, and how to fix it.
"""

from __future__ import annotations


class ConverterError(Exception):
    """Base of every error the converter raises on purpose."""


class InvalidParameterError(ConverterError, ValueError):
    """A conversion parameter, or a combination of them, is invalid."""


class SavedModelError(ConverterError, ValueError):
    """The input SavedModel cannot be used: missing, unknown tags or signature."""


class InputFnError(ConverterError, ValueError):
    """An `input_fn` or `calibration_input_fn` yielded tensors that do not fit."""


class ConverterStateError(ConverterError, RuntimeError):
    """A method was called out of order (e.g. `build()` before `convert()`)."""


class BackendUnavailableError(ConverterError, RuntimeError):
    """The requested backend cannot run on this TensorFlow or device."""


class OutputExistsError(ConverterError, FileExistsError):
    """The output directory exists; the converter never overwrites one."""


class EngineExportError(ConverterError, RuntimeError):
    """The saved model failed to load or run in a TF1 Session (TF Serving's path)."""


class UnsupportedModelError(ConverterError, ValueError):
    """The model uses a construct the converter cannot rewrite; the message names
    the construct and what to do (e.g. serve the original, or re-export)."""

"""Where the recorder's process starts: TensorFlow is imported first, as quietly as the
parent chose (``converter.console``), and only then the recorder itself.

This module and the arguments it receives (``RecorderSettings``, a path, a pipe) import nothing
heavy, so multiprocessing's "spawn" child reaches this function before anything loads
TensorFlow; otherwise TensorFlow's start-up lines would reach the sidecar's standard error.
"""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from converter.console import import_tensorflow
from sidecar.recorder.settings import RecorderSettings, RestRecording


def start_recorder_child(settings: RecorderSettings, state_dir: Path, connection: Connection,
                         grace: float, clock: Callable[[], float],
                         rest: RestRecording | None,
                         share: Callable[[], float] | None) -> None:
    """The spawned process's target: see `sidecar.recorder.child.run_recorder_child`."""
    import_tensorflow()
    from sidecar.recorder.child import run_recorder_child

    run_recorder_child(settings, state_dir, connection, grace, clock, rest, share)

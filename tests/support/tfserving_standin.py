"""A stand-in for TensorFlow Serving's gRPC server. TEST-ONLY: the TF Serving binary
cannot be installed here, so end-to-end tests and benchmarks talk to this instead.

It serves `tensorflow.serving.PredictionService` (Predict, Classify, Regress,
MultiInference, GetModelMetadata) and `tensorflow.serving.ModelService`
(GetModelStatus, HandleReloadConfigRequest) from SavedModels in model base
directories, the way TF Serving does: numeric version directories polled every
`--file_system_poll_wait_seconds`, loaded through the TF1 Session loader, warmup
records (`assets.extra/tf_serving_warmup_requests`) replayed before a version is
AVAILABLE, the newest version served unless the request names one.

Run it with TF Serving's flag names:

    python tests/support/tfserving_standin.py --port 8500 \
        --model_name m --model_base_path /models/m
    python tests/support/tfserving_standin.py --port 8500 --model_config_file models.config

or in-process with `start_standin(StandinSettings(...))`, which returns a handle with
`stop()`. Deviation from TF Serving: the model config file is re-read on every poll.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the `tests.support` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc

from tests.support.standin_config import ModelConfig, parse_model_server_config
from tests.support.standin_registry import ModelRegistry, VersionState
from tests.support.standin_service import CallLog, ReceivedCall, add_servicers
from tests.support.waiting import wait_until

_log = logging.getLogger("tfserving_standin")
_MAX_MESSAGE_BYTES = (1 << 31) - 1  # TF Serving accepts messages up to INT32_MAX


@dataclass(frozen=True)
class StandinSettings:
    """How to run the stand-in: a single model (`model_name` + `model_base_path`) or a
    `model_config_file`."""

    port: int = 0
    """Port to serve on; 0 picks a free one (see `StandinHandle.port`)."""
    model_name: str = "default"
    """Name of the single model served from `model_base_path`."""
    model_base_path: Path | None = None
    """Base directory with numeric version subdirectories of the single model."""
    model_config_file: Path | None = None
    """A `ModelServerConfig` text proto; re-read on every poll."""
    file_system_poll_wait_seconds: float = 1.0
    """Seconds between polls of the base paths; 0 polls once at start."""
    host: str = "127.0.0.1"
    """Address to bind."""
    request_delay_seconds: float = 0.0
    """Test hook: every call waits this long before it runs (a slow upstream)."""
    max_workers: int = 16
    """Threads serving calls."""

    def __post_init__(self) -> None:
        if (self.model_base_path is None) == (self.model_config_file is None):
            raise ValueError(
                "StandinSettings needs exactly one of model_base_path or model_config_file"
            )


class _ConfigSource:
    """Reads what to serve: the single model once, or the config file when it changed."""

    def __init__(self, settings: StandinSettings) -> None:
        self._settings = settings
        self._last_text: str | None = None
        self._single_sent = False

    def read(self) -> list[ModelConfig] | None:
        settings = self._settings
        if settings.model_config_file is None:
            if self._single_sent or settings.model_base_path is None:
                return None
            self._single_sent = True
            return [ModelConfig(settings.model_name, settings.model_base_path)]
        try:
            text = settings.model_config_file.read_text()
        except OSError as error:
            _log.warning("cannot read %s: %s", settings.model_config_file, error)
            return None
        if text == self._last_text:
            return None
        try:
            models = parse_model_server_config(text)
        except Exception as error:
            _log.warning("cannot parse %s: %s", settings.model_config_file, error)
            return None
        self._last_text = text
        return models


class StandinHandle:
    """A running stand-in: its `port`, what it has loaded, what it received, `stop()`."""

    def __init__(
        self,
        server: grpc.Server,
        registry: ModelRegistry,
        log: CallLog,
        port: int,
        host: str,
        poll_seconds: float,
    ) -> None:
        self._server = server
        self.registry = registry
        """The models it serves (a REST stand-in serves the same ones)."""
        self._log = log
        self._stopping = threading.Event()
        self.port = port
        """The bound port."""
        self.address = f"{host}:{port}"
        """`host:port` to connect to."""
        self._poller: threading.Thread | None = None
        if poll_seconds > 0:
            self._poller = threading.Thread(
                target=self._poll_forever, args=(poll_seconds,), name="standin-poll", daemon=True
            )
            self._poller.start()

    def _poll_forever(self, seconds: float) -> None:
        while not self._stopping.wait(seconds):
            try:
                self.registry.poll()
            except Exception:
                _log.exception("poll failed")

    def poll_now(self) -> None:
        """Poll the base paths right away (tests that do not want to wait)."""
        self.registry.poll()

    def version_states(self, model: str) -> dict[int, str]:
        """Version number -> state name (`"AVAILABLE"`, `"END"`, ...) of `model`."""
        return {e.version: e.state.name for e in self.registry.version_entries(model)}

    def warmup_records(self, model: str, version: int) -> int:
        """How many warmup records the load of `version` replayed."""
        for entry in self.registry.version_entries(model):
            if entry.version == version:
                return entry.warmup_records
        raise KeyError(f"{model} has no version {version}")

    def wait_for_state(self, model: str, version: int, state: str, timeout: float) -> None:
        """Wait until `version` of `model` is in `state`; fail the test after `timeout` s."""
        wait_until(lambda: self.version_states(model), timeout,
                   f"{model}/{version} {state} in the stand-in",
                   done=lambda states: states.get(version) == state, interval=0.02)

    def calls(self) -> list[ReceivedCall]:
        """The calls received lately, oldest first."""
        return self._log.snapshot()

    def stop(self, grace: float | None = None) -> None:
        """Stop serving (in-flight calls get `grace` seconds) and unload every model."""
        self._stopping.set()
        self._server.stop(grace).wait()
        if self._poller is not None:
            self._poller.join()
        self.registry.unload_all()


def start_standin(settings: StandinSettings) -> StandinHandle:
    """Load the configured models (with warmup), then serve; returns once serving."""
    registry = ModelRegistry(_ConfigSource(settings).read)
    registry.poll()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers),
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ],
    )
    log = CallLog()
    add_servicers(server, registry, log, settings.request_delay_seconds)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        registry.unload_all()
        raise OSError(f"cannot listen on {settings.host}:{settings.port}")
    server.start()
    return StandinHandle(
        server, registry, log, port, settings.host, settings.file_system_poll_wait_seconds
    )


def _parse_args(argv: list[str] | None) -> StandinSettings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--model_name", default="default")
    parser.add_argument("--model_base_path", type=Path)
    parser.add_argument("--model_config_file", type=Path)
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--standin_request_delay_seconds", type=float, default=0.0, help="test hook"
    )
    args = parser.parse_args(argv)
    if (args.model_base_path is None) == (args.model_config_file is None):
        parser.error("give exactly one of --model_base_path or --model_config_file")
    return StandinSettings(
        port=args.port,
        model_name=args.model_name,
        model_base_path=args.model_base_path,
        model_config_file=args.model_config_file,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        host=args.host,
        request_delay_seconds=args.standin_request_delay_seconds,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the stand-in until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _parse_args(argv)
    handle = start_standin(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"Running gRPC ModelServer at {handle.address} ...", flush=True)
    # Timed waits: a signal the OS hands to another thread (gRPC's, TensorFlow's) only
    # runs its handler once the main thread runs Python again; an untimed wait never does.
    while not stop.wait(0.5):
        pass
    handle.stop(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["ReceivedCall", "StandinHandle", "StandinSettings", "VersionState", "start_standin"]

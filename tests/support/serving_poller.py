"""TEST-ONLY: a stand-in for TF Serving's file-system poller, to catch unsafe publishing.

The TF Serving binary is not available here, so this watches a serving base the
way TF Serving does: only numeric child directories of ``<base>/<model>/`` are
versions, polled every ``poll_seconds`` (TF Serving's default is 1 s), and a
version is loaded through the TF1 Session loader (TF Serving's path) as soon as
it is seen, then its warmup requests are replayed in that session. It records a
violation when a version is

- unloadable: the Session loader or a warmup request fails,
- missing its warmup file when first seen (``require_warmup``),
- partial: its files change after it was first seen (it was visible half-written).

Use it as a context manager and assert ``poller.violations == []``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sidecar.tfserving.numbering import served_version_from_name
from sidecar.tfserving.warmup import read_warmup_file, warmup_file_path
from sidecar.watch.listing import fingerprint
from tests.support.waiting import wait_until

Manifest = tuple[tuple[str, bool, int], ...]


@dataclass(frozen=True)
class Violation:
    """Something TF Serving would have got wrong."""

    model: str
    version: int
    kind: str
    """"unloadable", "no-warmup" or "partial"."""
    detail: str


class ServingPoller:
    """Polls a serving base in a background thread like TF Serving; records violations."""

    def __init__(
        self,
        serving_base: Path,
        *,
        poll_seconds: float = 1.0,
        require_warmup: bool = True,
        tags: tuple[str, ...] = ("serve",),
    ) -> None:
        self._base = serving_base
        self._poll_seconds = poll_seconds
        self._require_warmup = require_warmup
        self._tags = list(tags)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="serving-poller", daemon=True)
        self._manifests: dict[tuple[str, int], Manifest] = {}
        self.violations: list[Violation] = []
        """Everything found wrong so far."""
        self.loaded: list[tuple[str, int]] = []
        """Versions loaded (and warmed up) successfully, in order."""

    def __enter__(self) -> ServingPoller:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.poll_once()

    def wait_for(self, model: str, version: int, timeout: float = 30.0) -> bool:
        """Wait until ``version`` of ``model`` was loaded or flagged; True if loaded. Fails
        the test when neither happened within ``timeout`` seconds."""
        def outcome() -> str | None:
            with self._lock:
                if (model, version) in self.loaded:
                    return "loaded"
                if any((v.model, v.version) == (model, version) for v in self.violations):
                    return "flagged"
            return None

        return wait_until(outcome, timeout, f"{model}/{version} loaded or flagged",
                          interval=0.02) == "loaded"

    def poll_once(self) -> None:
        """One poll: check known versions for change, load new ones."""
        for model, version, path in self._versions():
            key = (model, version)
            manifest = _manifest(path)
            if not path.is_dir():
                continue  # left view while being read: TF Serving unloads it, nothing changed
            with self._lock:
                first = self._manifests.get(key)
            if first is None:
                with self._lock:
                    self._manifests[key] = manifest
                self._load(model, version, path)
            elif manifest and manifest != first:
                self._flag(model, version, "partial", "files changed after the version was seen")
                with self._lock:
                    self._manifests[key] = manifest

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self._poll_seconds)

    def _versions(self) -> Iterator[tuple[str, int, Path]]:
        try:
            models = sorted(os.listdir(self._base))
        except FileNotFoundError:
            return
        for model in models:
            model_dir = self._base / model
            if model.startswith(".") or not model_dir.is_dir():
                continue
            try:
                names = os.listdir(model_dir)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in sorted(names):
                version = served_version_from_name(name)
                if version is not None and (model_dir / name).is_dir():
                    yield model, version, model_dir / name

    def _load(self, model: str, version: int, path: Path) -> None:
        if self._require_warmup and not warmup_file_path(path).is_file():
            self._flag(model, version, "no-warmup", f"no {warmup_file_path(path)} when first seen")
            return
        try:
            _load_and_warm_up(path, self._tags)
        except Exception as exc:
            if not path.exists():
                return  # taken out of view while loading; TF Serving just unloads it
            self._flag(model, version, "unloadable", f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            self.loaded.append((model, version))

    def _flag(self, model: str, version: int, kind: str, detail: str) -> None:
        with self._lock:
            self.violations.append(Violation(model, version, kind, detail))


def _manifest(path: Path) -> Manifest:
    return tuple((name, is_dir, size) for name, is_dir, size, _ in fingerprint(path))


def _load_and_warm_up(path: Path, tags: list[str]) -> None:
    from converter import ServingSession

    warmup = read_warmup_file(path)
    with ServingSession.load(path, tags) as served:
        served.replay_predict_requests(log.predict_log.request for log in warmup)

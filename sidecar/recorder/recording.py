"""Recording off the hot path: a bounded queue the proxy drops into, and the worker that
parses queued requests and hands their shapes to a recorder."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from sidecar.base.supervision import QUICK_DEATH_SECONDS
from sidecar.recorder.errors import UnparsableRequestError
from sidecar.recorder.request_shapes import observations_from_request
from sidecar.recorder.settings import RecorderSettings
from sidecar.recorder.stats import TapObserver
from sidecar.shapes import Refusal, ShapeObservation

_LOG = logging.getLogger(__name__)


class Recorder(Protocol):
    """Where observations go; `sidecar.shapes.ShapeStore` is one.

    Called on a worker thread, one batch at a time; may block (disk writes).
    """

    def record(self, observations: Sequence[ShapeObservation]) -> Sequence[Refusal | None]:
        """Store a batch; return, per observation, why it was refused or None."""
        ...


class RequestParser(Protocol):
    """How queued calls of one kind (gRPC, REST) are read."""

    def observations(self, call: PendingCall, sample: bool) -> list[ShapeObservation]:
        """The call's observations (the first carrying the request when ``sample``);
        UnparsableRequestError when it cannot be read."""
        ...

    def method(self, call: PendingCall) -> str:
        """The label a call is counted under (``Predict``, ``rest:predict``, ...)."""
        ...


class PendingCall(NamedTuple):
    """A successful inference call waiting to be recorded."""

    method: str
    request: bytes
    received_at: float


class RecordQueue:
    """A queue bounded by item count and by total request bytes; never blocks the producer."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._queue: asyncio.Queue[PendingCall] = asyncio.Queue(max_items)
        self._max_bytes = max_bytes
        self._bytes = 0


    def offer(self, call: PendingCall) -> bool:
        """Enqueue `call` unless the queue is full; False means it was dropped."""
        size = len(call.request)
        if self._bytes + size > self._max_bytes:
            return False
        try:
            self._queue.put_nowait(call)
        except asyncio.QueueFull:
            return False
        self._bytes += size
        return True

    async def take(self, limit: int) -> list[PendingCall]:
        """Wait for at least one call, then take up to `limit` without waiting more."""
        batch = [await self._queue.get()]
        while len(batch) < limit and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        self._bytes -= sum(len(call.request) for call in batch)
        return batch

    def empty(self) -> bool:
        """True when nothing waits."""
        return self._queue.empty()


class GrpcRequests:
    """PredictionService calls: `PendingCall.method` is the method, `request` its bytes."""

    def observations(self, call: PendingCall, sample: bool) -> list[ShapeObservation]:
        """The call's request, parsed (see `observations_from_request`)."""
        return observations_from_request(call.method, call.request, call.received_at, sample)

    def method(self, call: PendingCall) -> str:
        """The method's name."""
        return call.method


class RecordingWorker:
    """Drains a `RecordQueue`: parses each request, samples some, records the shapes."""

    def __init__(
        self,
        queue: RecordQueue,
        recorder: Recorder,
        observer: TapObserver,
        settings: RecorderSettings,
        parser: RequestParser | None = None,
        share: Callable[[], float] | None = None,
    ) -> None:
        self._parser: RequestParser = parser or GrpcRequests()
        self._weight = _Weight(share)
        self._queue = queue
        self._recorder = recorder
        self._observer = observer
        self._settings = settings
        self._random = random.Random(settings.sample_seed)
        self._busy = False
        self._bugs_logged: set[str] = set()

    @property
    def idle(self) -> bool:
        """True when nothing is queued and no batch is being recorded."""
        return not self._busy and self._queue.empty()

    async def run(self) -> None:
        """Record batches until cancelled."""
        while True:
            batch = await self._queue.take(self._settings.record_batch_size)
            self._busy = True
            try:
                # Parsing and disk writes run on a thread so the event loop keeps forwarding.
                await asyncio.to_thread(self._record_batch, batch)
            finally:
                self._busy = False
            await asyncio.sleep(self._settings.record_interval_seconds)

    def _record_batch(self, batch: list[PendingCall]) -> None:
        observations: list[ShapeObservation] = []
        for call in batch:
            try:
                observations.extend(self._parser.observations(call, self._should_sample(call)))
            except UnparsableRequestError:
                self._observer.unparsable(self._parser.method(call))
            except Exception as error:  # a parser bug must cost this call, not the next ones
                self._parser_bug(call, error)
        weight = self._weight.now()
        if weight != 1:
            observations = [dataclasses.replace(seen, weight=weight) for seen in observations]
        if not observations:
            return
        try:
            refusals = self._recorder.record(observations)
        except Exception as error:
            self._observer.recorder_failed(error)
            return
        for observation, refusal in zip(observations, refusals, strict=False):
            self._observer.recorded(observation, refusal)

    def _parser_bug(self, call: PendingCall, error: Exception) -> None:
        method = self._parser.method(call)
        self._observer.unparsable(method)
        kind = type(error).__name__
        if kind not in self._bugs_logged:  # once per kind: every call of a kind may raise
            self._bugs_logged.add(kind)
            _LOG.error("cannot read a mirrored %s call (%s: %s); it is counted as "
                       "unparsable, and so is every later call failing so", method, kind,
                       error, exc_info=error)

    def _should_sample(self, call: PendingCall) -> bool:
        rate = self._settings.sample_rate
        if rate <= 0.0 or len(call.request) > self._settings.sample_max_bytes:
            return False
        return rate >= 1.0 or self._random.random() < rate


class _Weight:
    """How many calls each recorded one stands for: 1 / the share of calls Envoy mirrors,
    asked of ``share`` at most every :data:`SHARE_REFRESH_SECONDS`."""

    def __init__(self, share: Callable[[], float] | None) -> None:
        self._share = share
        self._value = 1
        self._asked_at = -SHARE_REFRESH_SECONDS

    def now(self) -> int:
        if self._share is None:
            return 1
        if time.monotonic() - self._asked_at >= SHARE_REFRESH_SECONDS:
            share = self._share()
            self._value = max(1, round(1 / share)) if share > 0 else 1
            self._asked_at = time.monotonic()
        return self._value


SHARE_REFRESH_SECONDS = 0.5
"""How often the recorder asks which share of calls it is sent (a local HTTP call to
Envoy's admin API): a new share is applied to the counts within this long."""


class RecordingTask:
    """A `RecordingWorker` running as a task of the event loop it was started on, started
    again whenever it raises: the observer hears `recording_stopped` then, and
    `recording_restarted` once it runs again (the batch it was recording is lost)."""

    def __init__(self, worker: RecordingWorker, name: str, observer: TapObserver,
                 restart_delays: tuple[float, float]) -> None:
        """``restart_delays``: the first and the longest wait before a restart (see
        `RecorderSettings.recording_restart_seconds`)."""
        self._worker = worker
        self._name = name
        self._observer = observer
        self._restart_delays = restart_delays
        self._task = asyncio.create_task(self._keep_running(), name=name)

    async def _keep_running(self) -> None:
        delay = self._restart_delays[0]
        while True:
            started = time.monotonic()
            try:
                await self._worker.run()
            except Exception as error:
                # Anything but cancellation (a BaseException): recording must outlive it.
                if time.monotonic() - started > QUICK_DEATH_SECONDS:
                    delay = self._restart_delays[0]
                self._observer.recording_stopped(self._name, error, delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, self._restart_delays[1])
                self._observer.recording_restarted(self._name)

    async def wait_recorded(self, timeout: float) -> bool:
        """Wait until every queued call was recorded; False if `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        while not self._worker.idle:
            if time.monotonic() >= deadline or self._task.done():
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self, grace: float) -> None:
        """Record what is queued (for up to `grace` seconds), then end the task."""
        await self.wait_recorded(grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

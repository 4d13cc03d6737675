"""The durable shape store: shape-set frequencies over a sliding window, refusals, samples."""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from sidecar.base.sqlite_writes import immediate_transaction, storage_error
from sidecar.config.shape_store import ShapeStoreSettings
from sidecar.shapes.coverage import Coverage, TopShapeSets, coverage_of, rank_shape_sets
from sidecar.shapes.errors import ShapeStoreWriteError
from sidecar.shapes.limits import Refusal, refusal_for
from sidecar.shapes.samples import SAMPLED_METHODS, StoredSample
from sidecar.shapes.schema import DATABASE_NAME, open_database
from sidecar.shapes.shape_set import ShapeObservation, ShapeSet

# TF Serving reads at most this many warmup records.
MAX_WARMUP_RECORDS = 1000


class ShapeStore:
    """Counts request shape sets per (model, signature) in a sqlite file under `state_dir`.

    Thread-safe: one lock serialises all access. `clock` returns seconds since the epoch
    (the same clock the tap stamps observations with) and decides what is "recent".
    """

    def __init__(
        self,
        state_dir: Path,
        settings: ShapeStoreSettings,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection = open_database(state_dir)
        self._path = state_dir / DATABASE_NAME
        self._pruned_below = -math.inf
        self._coarsened_below: int | None = None

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ShapeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    def record(self, observations: Sequence[ShapeObservation]) -> list[Refusal | None]:
        """Count each observation in its time bucket and keep its sample, in one transaction.

        Returns, per observation, why it was refused or None when it was stored. Raises
        ShapeStoreWriteError (retryable, nothing stored) when the database refuses, e.g.
        with the state disk full.
        """
        with self._lock:
            try:
                with immediate_transaction(self._db):
                    return self._record_locked(observations)
            except sqlite3.Error as error:
                raise storage_error(
                    error, f"record {len(observations)} request shape(s)",
                    self._path, error_type=ShapeStoreWriteError,
                ) from error

    def _record_locked(self, observations: Sequence[ShapeObservation]) -> list[Refusal | None]:
        now = self._clock()
        first_bucket = self._first_bucket(now)
        self._prune_locked(first_bucket)
        self._coarsen_locked(self._bucket(now - self._settings.fine_seconds))
        counts: Counter[tuple[str, str, str, int]] = Counter()
        refusals: Counter[tuple[str, str, str]] = Counter()
        outcomes: list[Refusal | None] = []
        known: dict[tuple[str, str], set[str]] = {}
        sampled_models: set[str] = set()
        for seen in observations:
            reason = refusal_for(seen.shape_set, self._settings.limits)
            key = seen.shape_set.key()
            if reason is None:
                keys = known.get((seen.model, seen.signature))
                if keys is None:
                    keys = self._keys_in_window(seen.model, seen.signature, first_bucket)
                    known[(seen.model, seen.signature)] = keys
                if key not in keys:
                    if len(keys) >= self._settings.max_shape_sets_per_signature:
                        reason = Refusal.TOO_MANY_SHAPE_SETS
                    else:
                        keys.add(key)
            outcomes.append(reason)
            if reason is not None:
                refusals[(seen.model, seen.signature, reason.value)] += 1
                continue
            counts[(seen.model, seen.signature, key, self._bucket(seen.received_at))] += seen.weight
            if seen.sample is not None and seen.method in SAMPLED_METHODS:
                self._db.execute(
                    "INSERT INTO samples (model, signature, method, received_at, size, request) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        seen.model,
                        seen.signature,
                        seen.method,
                        seen.received_at,
                        len(seen.sample),
                        seen.sample,
                    ),
                )
                sampled_models.add(seen.model)
        self._db.executemany(
            "INSERT INTO shape_counts (model, signature, shape_key, bucket, count) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (model, signature, shape_key, bucket) "
            "DO UPDATE SET count = count + excluded.count",
            [(*where, count) for where, count in counts.items()],
        )
        self._db.executemany(
            "INSERT INTO refusals (model, signature, reason, count) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (model, signature, reason) DO UPDATE SET count = count + excluded.count",
            [(*where, count) for where, count in refusals.items()],
        )
        for model in sampled_models:
            self._evict_samples_locked(model)
        return outcomes

    def _keys_in_window(self, model: str, signature: str, first_bucket: int) -> set[str]:
        rows = self._db.execute(
            "SELECT DISTINCT shape_key FROM shape_counts "
            "WHERE model = ? AND signature = ? AND bucket >= ?",
            (model, signature, first_bucket),
        )
        return {key for (key,) in rows}

    def _evict_samples_locked(self, model: str) -> None:
        rows = self._db.execute(
            "SELECT id, size FROM samples WHERE model = ? ORDER BY id DESC", (model,)
        ).fetchall()
        kept_bytes = 0
        doomed: list[tuple[int]] = []
        for index, (sample_id, size) in enumerate(rows):
            kept_bytes += size
            if (
                index >= self._settings.max_samples_per_model
                or kept_bytes > self._settings.max_sample_bytes_per_model
            ):
                doomed.append((sample_id,))
        self._db.executemany("DELETE FROM samples WHERE id = ?", doomed)

    def _prune_locked(self, first_bucket: int) -> None:
        if first_bucket > self._pruned_below:
            self._db.execute("DELETE FROM shape_counts WHERE bucket < ?", (first_bucket,))
            self._pruned_below = first_bucket

    def _coarsen_locked(self, horizon: int) -> None:
        """Fold the fine buckets older than `horizon` into their coarse bucket (the row at
        the coarse bucket's first fine index), which bounds the rows per shape set by
        `ShapeStoreSettings.max_rows_per_shape_set`. Totals over the window are unchanged.

        Each fine bucket is folded once, as it passes the horizon; observations stamped up
        to `fine_seconds` late are still caught, and the first call after opening folds
        everything below the horizon."""
        if self._coarsened_below is not None and horizon <= self._coarsened_below:
            return
        per_coarse = self._settings.buckets_per_coarse_bucket
        where = "WHERE bucket < ? AND bucket % ? != 0"
        args: tuple[int, ...] = (horizon, per_coarse)
        if self._coarsened_below is not None:
            late = math.ceil(self._settings.fine_seconds / self._settings.bucket_seconds)
            where += " AND bucket >= ?"
            args = (*args, self._coarsened_below - late)
        self._db.execute(
            "INSERT INTO shape_counts (model, signature, shape_key, bucket, count) "
            "SELECT model, signature, shape_key, bucket - bucket % ?, SUM(count) "
            f"FROM shape_counts {where} GROUP BY model, signature, shape_key, bucket - bucket % ? "
            "ON CONFLICT (model, signature, shape_key, bucket) "
            "DO UPDATE SET count = count + excluded.count",
            (per_coarse, *args, per_coarse),
        )
        self._db.execute(f"DELETE FROM shape_counts {where}", args)
        self._coarsened_below = horizon

    def _bucket(self, when: float) -> int:
        return math.floor(when / self._settings.bucket_seconds)

    def _first_bucket(self, now: float) -> int:
        return self._bucket(now - self._settings.window_seconds)

    # -- reading -------------------------------------------------------------------------

    def shape_set_counts(self, model: str, signature: str) -> list[tuple[ShapeSet, int]]:
        """Every shape set of (model, signature) in the window with its request count."""
        with self._lock:
            rows = self._db.execute(
                "SELECT shape_key, SUM(count) FROM shape_counts "
                "WHERE model = ? AND signature = ? AND bucket >= ? GROUP BY shape_key",
                (model, signature, self._first_bucket(self._clock())),
            ).fetchall()
        return [(ShapeSet.from_key(key), int(count)) for key, count in rows]

    def top_shape_sets(self, model: str, signature: str, limit: int) -> TopShapeSets:
        """The at most `limit` shape sets that carried the most recent traffic."""
        return rank_shape_sets(self.shape_set_counts(model, signature), limit)

    def coverage(self, model: str, signature: str, prebuilt: Iterable[ShapeSet]) -> Coverage:
        """The share of recent (model, signature) traffic that `prebuilt` shape sets match."""
        return coverage_of(self.shape_set_counts(model, signature), prebuilt)

    def signatures(self) -> list[tuple[str, str]]:
        """Every (model, signature) with traffic in the window, sorted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT model, signature FROM shape_counts WHERE bucket >= ? "
                "ORDER BY model, signature",
                (self._first_bucket(self._clock()),),
            ).fetchall()
        return [(model, signature) for model, signature in rows]

    def refused_counts(self, model: str | None = None) -> dict[Refusal, int]:
        """How many observations were refused, by reason (all models, or just `model`)."""
        query = "SELECT reason, SUM(count) FROM refusals"
        args: tuple[str, ...] = ()
        if model is not None:
            query += " WHERE model = ?"
            args = (model,)
        with self._lock:
            rows = self._db.execute(query + " GROUP BY reason", args).fetchall()
        return {Refusal(reason): int(count) for reason, count in rows}

    def samples(self, model: str, signature: str | None = None) -> list[StoredSample]:
        """Stored samples of `model` (optionally one signature), oldest first."""
        query = "SELECT model, signature, method, received_at, request FROM samples WHERE model = ?"
        args: tuple[str, ...] = (model,)
        if signature is not None:
            query += " AND signature = ?"
            args = (model, signature)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [StoredSample(*row) for row in rows]

    def predict_requests(
        self, model: str, signature: str | None = None
    ) -> list[predict_pb2.PredictRequest]:
        """The sampled Predict requests of `model`, oldest first, as protos."""
        return [
            predict_pb2.PredictRequest.FromString(sample.request_bytes)
            for sample in self.samples(model, signature)
            if sample.method == "Predict"
        ]

    def warmup_logs(
        self, model: str, limit: int = MAX_WARMUP_RECORDS
    ) -> list[prediction_log_pb2.PredictionLog]:
        """The newest at most `limit` samples of `model` as TF Serving warmup records."""
        chosen = self.samples(model)[-limit:] if limit > 0 else []
        return [sample.prediction_log() for sample in chosen]

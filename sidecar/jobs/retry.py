"""When a job that failed for a reason that can pass is tried again.

A job that ends with a retryable error (:attr:`sidecar.base.errors.SidecarError.retryable`:
a full disk, an I/O error, a detached volume) is recorded FAILED with a retry time;
the service restarts it when that time comes. Each attempt waits twice as long as the
one before, up to a cap, and retrying never stops by itself: the fault can last hours
and the job succeeds as soon as the storage works. ``admin convert <model> <version>
--rebuild`` retries at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.config import defaults


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for retryable failures (of jobs, and of the service's steps)."""

    first_delay_seconds: float = defaults.DEFAULT_RETRY_BACKOFF_SECONDS
    """Wait before the first retry."""

    max_delay_seconds: float = defaults.DEFAULT_RETRY_BACKOFF_MAX_SECONDS
    """The longest wait between two attempts."""

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        exponent = min(max(failures, 1) - 1, 60)  # 2**60 s is far past any cap
        return min(self.max_delay_seconds, self.first_delay_seconds * 2.0 ** exponent)

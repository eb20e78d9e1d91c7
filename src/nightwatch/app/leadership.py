"""Leadership: a lease watchdog that turns a `LeaderLock` into a fencing `Fence` for the use cases.

Standby: try to acquire every `retry_interval`. On gaining the lease: take a new fencing epoch in
the database, then report leadership. Leader: renew every `renew_interval`; a failed renewal, or
one that leaves less than `safety_margin` on the lease, steps down at once. `epoch()` (called by
the use cases before every write batch) checks the lease locally, so a leader paused past its
lease raises LeadershipLost instead of writing; the database's epoch check catches the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from nightwatch.app.metrics import Metrics
from nightwatch.domain.errors import LeadershipLost, NightwatchError
from nightwatch.domain.ports import LeaderLock, LeaderStore

logger = logging.getLogger(__name__)

SHUTTING_DOWN = "shutting down"


class Leadership:
    def __init__(
        self,
        lock: LeaderLock,
        repository: LeaderStore,
        *,
        renew_interval: float,
        retry_interval: float,
        safety_margin: float,
        metrics: Metrics | None = None,
        on_gain: Callable[[], None] = lambda: None,
        on_loss: Callable[[], None] = lambda: None,
    ) -> None:
        self._lock = lock
        self._repository = repository
        self._renew_interval = renew_interval
        self._retry_interval = retry_interval
        self._margin = safety_margin
        self._metrics = metrics or Metrics()
        self.on_gain = on_gain
        self.on_loss = on_loss
        self._epoch: int | None = None
        self._state = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the Fence the use cases see --------------------------------------------------------
    def epoch(self) -> int:
        with self._state:
            epoch = self._epoch
        if epoch is None:
            raise LeadershipLost("this replica is not the leader")
        if self._lock.validity_seconds() <= self._margin:
            raise LeadershipLost("the lease is about to expire; not writing")
        return epoch

    @property
    def is_leader(self) -> bool:
        with self._state:
            return self._epoch is not None

    @property
    def current_epoch(self) -> int | None:
        with self._state:
            return self._epoch

    def lease_fresh(self) -> bool:
        """For /readyz: a standby is fine; a leader must have more than the safety margin left."""
        return not self.is_leader or self._lock.validity_seconds() > self._margin

    # -- the watchdog -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leadership", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the watchdog, step down and release the lease so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._step_down(SHUTTING_DOWN)
        self._lock.release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self._renew() if self.is_leader else self._try_acquire()
            except Exception:  # the watchdog must never die; treat the unknown as a lost lease
                logger.exception("leadership watchdog error")
                self._step_down("watchdog error")
                wait = self._retry_interval
            self._metrics.lease_validity.set(self._lock.validity_seconds())
            self._stop.wait(wait)

    def _try_acquire(self) -> float:
        if not self._lock.acquire():
            return self._retry_interval
        try:
            epoch = self._repository.advance_epoch()
        except NightwatchError as exc:
            logger.warning("gained the lease but could not take a fencing epoch (%s); releasing it", exc)
            self._lock.release()
            return self._retry_interval
        with self._state:
            self._epoch = epoch
        self._metrics.leader.set(1)
        self._metrics.epoch.set(epoch)
        self._metrics.leader_acquisitions.inc()
        logger.info("became the leader with fencing epoch %d", epoch)
        self.on_gain()
        return self._renew_interval

    def _renew(self) -> float:
        if self._lock.renew() and self._lock.validity_seconds() > self._margin:
            self._metrics.lease_renewals.inc()
            return self._renew_interval
        self._step_down("lease renewal failed")
        # Drop whatever is left of our lease at once so a standby need not wait for it to expire.
        self._lock.release()
        return self._retry_interval

    def _step_down(self, why: str) -> None:
        with self._state:
            was_leader, self._epoch = self._epoch is not None, None
        if was_leader:
            # Giving the lease up on shutdown is the plan; losing it otherwise is worth a warning.
            logger.log(logging.INFO if why == SHUTTING_DOWN else logging.WARNING, "stepping down: %s", why)
            self._metrics.leader.set(0)
            self._metrics.epoch.set(0)
            self._metrics.lease_losses.inc()
            self.on_loss()

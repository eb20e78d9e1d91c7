"""/api/v1/summary and /api/v1/whoami: what the web page polls besides the task list."""

from __future__ import annotations

from fastapi import APIRouter

from nightwatch.app.api.deps import UNAUTHORIZED, AnyCaller, Reader, State
from nightwatch.app.api.schemas import SummaryOut, WhoAmIOut
from nightwatch.domain.model import TaskStatus

router = APIRouter(prefix="/api/v1", responses=UNAUTHORIZED)

SUMMARY_TTL_SECONDS = 2.0
"""How old the summary's counts may be: one count per user scope and period, however many open
pages ask (the `CachedCounts` that `create_app` gives the `ApiState`)."""


@router.get("/summary", response_model=SummaryOut)
def summary(who: Reader, state: State) -> SummaryOut:
    """Task counts by status (the caller's own tasks only, for a non-admin token when reads need
    one), at most a couple of seconds old."""
    counts = {str(s): 0 for s in TaskStatus}
    counts.update(state.summary_counts(state.policy.scope_of(who)))
    return SummaryOut(counts=counts, total=sum(counts.values()))


@router.get("/whoami", response_model=WhoAmIOut)
def whoami(who: AnyCaller, state: State) -> WhoAmIOut:
    """What the presented token (or none) may do; 401 only for a token that is not valid."""
    return WhoAmIOut(
        user_id=who.user_id, admin=who.admin, can_write=who.authenticated, reads_open=state.policy.reads_open
    )

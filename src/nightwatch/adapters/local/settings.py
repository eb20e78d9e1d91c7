"""`LocalRunnerSettings`: where the local process runner keeps its Jobs (plain pydantic, no I/O)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class LocalRunnerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    local_state_dir: str = ".nightwatch/jobs"
    """Where Job state and output live, relative to the working directory."""

"""Every alert threshold, in one place (the defaults and a short test profile)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

RUNBOOK_URL = "https://github.com/corridor-monitor/corridor-monitor/blob/main/docs/runbook.md"


class Thresholds(BaseModel):
    """What the alert rules compare with; every field is documented in docs/runbook.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runbook_url: str = Field(RUNBOOK_URL, description="docs/runbook.md as operators read it; alerts link #<alert name>")
    # Each area adds its own thresholds below, with a one-line description.


#: Named sets of thresholds: ``default`` for production, ``test`` with short durations for live tests.
PROFILES: dict[str, Thresholds] = {
    "default": Thresholds(),
    "test": Thresholds(),
}

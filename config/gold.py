"""Gold as the plant declares it: signals, machine identity, shared event identity, and the
folder of model files (SQL with a YAML header, see `config.models`)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from plantlake.config.sources import Strict

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_SIGNAL_NAME = r"^[a-z][a-z0-9_]*$"


def duration(text: str, key: str) -> timedelta:
    """'90s', '15m', '6h' or '2d' as a timedelta; `key` names the setting in the error."""
    parsed = _DURATION.match(str(text).strip())
    if parsed is None:
        raise ValueError(f"{key}: expected a duration such as '90s', '15m', '6h' or '2d', got {text!r}")
    amount, unit = parsed.groups()
    return timedelta(**{_DURATION_UNITS[unit]: float(amount)})


class SignalConfig(Strict):
    """A plant-independent signal: which tags carry it, in which unit, and how to read it."""

    tag: str = Field(
        description="pattern on the tag's browse path (below the server's root), e.g. '*/Spindle*'; "
        "a pattern without '/' is matched on the tag's name alone"
    )
    unit: str | None = Field(
        default=None,
        description="the unit gold uses; values in another unit the server declares (EUInformation) are converted",
    )
    kind: Literal["gauge", "counter", "state"] = Field(
        default="gauge",
        description="gauge: a measured value; counter: a running count whose increments are summed (resets "
        "detected); state: a code whose meaning `states` names",
    )
    states: dict[str, float] = Field(default_factory=dict, description="state: name of each code, e.g. running: 2")
    description: str = ""


class EventIdentity(Strict):
    """When several sources report one event: same machine and code within `within` is one occurrence."""

    within: str = Field(default="5s", description="how far apart two sources' reports of one event may be")
    keep_sources_apart: bool = Field(default=False, description="true: count each source's reports on their own")

    @field_validator("within")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        duration(value, "gold.events.within")
        return value


class ShiftConfig(Strict):
    hours: int = Field(default=8, gt=0, le=24, description="length of a shift")
    first_start: str = Field(default="06:00", pattern=r"^\d{2}:\d{2}$", description="start of the day's first shift")


class GoldConfig(Strict):
    models: Path | None = Field(
        default=None,
        description="folder of gold model files (*.sql with a YAML header); relative to the YAML file",
    )
    machines: dict[str, str] = Field(
        default_factory=dict,
        description="every other name of a machine (OPC-UA folder, log host, ERP code) to its one machine id",
    )
    signals: dict[str, SignalConfig] = Field(default_factory=dict)
    events: EventIdentity = Field(default_factory=EventIdentity)
    shifts: ShiftConfig = Field(default_factory=ShiftConfig)

    @field_validator("signals")
    @classmethod
    def _signal_names(cls, value: dict[str, SignalConfig]) -> dict[str, SignalConfig]:
        for name in value:
            if not re.match(_SIGNAL_NAME, name):
                raise ValueError(f"gold.signals.{name}: a signal's name is lower case letters, digits and '_'")
        return value

"""What the emulator's compute environment can place: a job whose resources can never fit stays RUNNABLE with
AWS's MISCONFIGURATION reason (on the job; for an array on its RUNNABLE children, never on the parent).

The compute environment is abstract: its maximum vCPUs, its GPUs and (optionally) the memory of its largest
instance. A job fits when each requirement is within them; jobs that fit are scheduled as before (the
emulator's `concurrency` still counts attempts, vCPUs are not packed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BatchClientError

DEFAULT_MAX_VCPUS = 256.0
REASON_RESOURCES = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than "
    "that can be met by the CE(s) attached to the job queue."
)


@dataclass(frozen=True, slots=True)
class Capacity:
    max_vcpus: float = DEFAULT_MAX_VCPUS
    gpus: int = 0
    max_memory_mib: int | None = None  # None: memory never blocks a job

    def __post_init__(self) -> None:
        if not self.max_vcpus > 0 or self.gpus < 0 or (self.max_memory_mib is not None and self.max_memory_mib < 1):
            raise ValueError("max_vcpus must be > 0, gpus >= 0 and max_memory_mib >= 1 (or None)")

    def to_json(self) -> dict[str, Any]:
        return {"maxVcpus": self.max_vcpus, "gpus": self.gpus, "maxMemoryMiB": self.max_memory_mib}

    def unfit_reason(self, needs: Requirements) -> str | None:
        """AWS's statusReason for a job that can never be placed, or None when it fits."""
        too_big = (
            needs.vcpus > self.max_vcpus
            or needs.gpus > self.gpus
            or (self.max_memory_mib is not None and needs.memory_mib > self.max_memory_mib)
        )
        return REASON_RESOURCES if too_big else None


@dataclass(frozen=True, slots=True)
class Requirements:
    vcpus: float = 0.0
    memory_mib: int = 0
    gpus: int = 0


def _number(kind: str, raw: Any, *, integer: bool) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (integer and not value.is_integer()):
        what = "a non-negative integer" if integer else "a non-negative number"
        raise BatchClientError(f"Invalid resourceRequirements value {raw!r} for type {kind}: expected {what}")
    return value


def requirements(container: Mapping[str, Any]) -> Requirements:
    """A job's resources from its container (definition merged with `containerOverrides`): `resourceRequirements`
    VCPU, MEMORY (MiB), GPU, else the legacy `vcpus` / `memory` fields. Raises BatchClientError on a bad value."""
    by_type = {str(r.get("type", "")): r.get("value") for r in container.get("resourceRequirements") or ()}
    vcpus = by_type.get("VCPU", container.get("vcpus"))
    memory = by_type.get("MEMORY", container.get("memory"))
    gpus = by_type.get("GPU")
    return Requirements(
        vcpus=0.0 if vcpus is None else _number("VCPU", vcpus, integer=False),
        memory_mib=0 if memory is None else int(_number("MEMORY", memory, integer=True)),
        gpus=0 if gpus is None else int(_number("GPU", gpus, integer=True)),
    )

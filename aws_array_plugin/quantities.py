"""Kubernetes resource quantities (as flytekit writes them: "500m", "4Gi", "1e3") -> AWS Batch values.

Batch wants `resourceRequirements` values as strings: VCPU (whole vCPUs on EC2, one of a few sizes on
Fargate), MEMORY in MiB, GPU as a whole count. Memory is binary MiB (`1Gi` is 1024), which is what Batch means.
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal, localcontext

__all__ = [
    "FARGATE_MEMORY_MIB",
    "FARGATE_VCPUS",
    "QuantityError",
    "fargate_memory_mib",
    "fargate_resources",
    "gpus",
    "memory_mib",
    "parse_quantity",
    "vcpus",
]


class QuantityError(ValueError):
    pass


_SUFFIXES: dict[str, Decimal] = {
    "n": Decimal(10) ** -9,
    "u": Decimal(10) ** -6,
    "m": Decimal(10) ** -3,
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?P<suffix>[A-Za-z]*)(?P<exponent>[+-]?\d*)")
# k8s itself caps quantities far below this; the bound keeps "1e999999999" from building a giant Decimal.
_MAX_EXPONENT = 30
_SUFFIX_HELP = "n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei, or an exponent like 1e3"

# Fargate task sizes, and the memory (MiB) each accepts (AWS Batch ResourceRequirement documentation).
FARGATE_VCPUS: tuple[str, ...] = ("0.25", "0.5", "1", "2", "4", "8", "16")
FARGATE_MEMORY_MIB: dict[str, tuple[int, ...]] = {
    "0.25": (512, 1024, 2048),
    "0.5": tuple(range(1024, 4096 + 1, 1024)),
    "1": tuple(range(2048, 8192 + 1, 1024)),
    "2": tuple(range(4096, 16384 + 1, 1024)),
    "4": tuple(range(8192, 30720 + 1, 1024)),
    "8": tuple(range(16384, 61440 + 1, 4096)),
    "16": tuple(range(32768, 122880 + 1, 8192)),
}

_MIB = 2**20


@functools.lru_cache(maxsize=1024)  # templates repeat the same few strings; a Decimal is immutable
def parse_quantity(s: str) -> Decimal:
    """The exact value of a Kubernetes quantity: "500m" -> 0.5, "1Gi" -> 1073741824, "1e3" -> 1000."""
    text = s.strip()
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise QuantityError(f"invalid quantity {s!r}: expected a number with an optional suffix ({_SUFFIX_HELP})")
    number, suffix, exponent = match["number"], match["suffix"], match["exponent"]
    with localcontext() as ctx:
        ctx.prec = 80  # exact for anything up to Ei with plenty of digits; default 28 could round
        value = Decimal(number)
        if suffix in ("e", "E") and exponent.lstrip("+-"):
            power = int(exponent)
            if abs(power) > _MAX_EXPONENT:
                raise QuantityError(f"invalid quantity {s!r}: exponent {power} is out of range")
            return value.scaleb(power)
        if exponent or suffix not in _SUFFIXES:
            raise QuantityError(f"invalid quantity {s!r}: unknown suffix {suffix + exponent!r}{_hint(suffix)}")
        return value * _SUFFIXES[suffix]


def _hint(suffix: str) -> str:
    """Point at the usual mix-ups (GB, MiB, K) instead of only listing the grammar."""
    if suffix == "K":
        return " (did you mean 'k' (1000) or 'Ki' (1024)?)"
    trimmed = suffix[:-1] if suffix[-1:] in ("b", "B") else ""
    if trimmed and trimmed in _SUFFIXES:
        return f" (did you mean {trimmed!r}?)"
    return f"; use {_SUFFIX_HELP}"


def _positive(q: str, what: str) -> Decimal:
    value = parse_quantity(q)
    if value <= 0:
        raise QuantityError(f"{what} {q!r} must be greater than zero")
    return value


def vcpus(q: str, fargate: bool) -> str:
    """VCPU value: on EC2 whole vCPUs rounded up (min 1); on Fargate the smallest task size that holds q."""
    value = _positive(q, "cpu")
    if not fargate:
        return str(max(1, math.ceil(value)))
    for size in FARGATE_VCPUS:
        if value <= Decimal(size):
            return size
    raise QuantityError(f"cpu {q!r} is more than Fargate allows (at most {FARGATE_VCPUS[-1]} vCPU)")


def memory_mib(q: str) -> int:
    """MEMORY value in binary MiB, rounded up so the container never gets less than asked: "1G" -> 954."""
    whole_bytes = math.ceil(_positive(q, "memory"))
    return max(1, -(-whole_bytes // _MIB))  # integer ceil division: exact at any size


def gpus(q: str) -> int:
    """GPU count; 0 means no GPU. Batch (like Kubernetes) has no fractional GPUs, so "500m" is an error."""
    value = parse_quantity(q)
    if value < 0:
        raise QuantityError(f"gpu {q!r} must not be negative")
    if value != value.to_integral_value():
        raise QuantityError(f"gpu {q!r} must be a whole number of GPUs")
    return int(value)


def fargate_memory_mib(vcpu: str, mib: int) -> int:
    """The smallest memory Fargate accepts with `vcpu` that is at least `mib` (raised to that size's minimum).

    Raises QuantityError when `mib` is above the largest memory for that vCPU size; `fargate_resources`
    moves to a larger size instead.
    """
    allowed = FARGATE_MEMORY_MIB[_fargate_size(vcpu)]
    for value in allowed:
        if mib <= value:
            return value
    raise QuantityError(f"{mib} MiB is more memory than Fargate allows with {vcpu} vCPU (at most {allowed[-1]} MiB)")


def _fargate_size(vcpu: str) -> str:
    """Accept "1.0" or "0.50" for the canonical "1" / "0.5"."""
    try:
        wanted = Decimal(vcpu)
    except ArithmeticError:
        wanted = Decimal(-1)
    for size in FARGATE_VCPUS:
        if Decimal(size) == wanted:
            return size
    raise QuantityError(f"{vcpu!r} is not a Fargate vCPU size ({', '.join(FARGATE_VCPUS)})")


def fargate_resources(vcpu_q: str, mem_q: str) -> tuple[str, int]:
    """(VCPU, MEMORY MiB) of the smallest Fargate size that holds both quantities.

    Memory is rounded up to a value Fargate accepts; when it is more than the vCPU size allows, the vCPU size
    grows (e.g. 0.25 vCPU with 3Gi becomes 0.5 vCPU / 3072 MiB), as Fargate has no other way to give it.
    """
    size = vcpus(vcpu_q, fargate=True)
    mib = memory_mib(mem_q)
    for candidate in FARGATE_VCPUS[FARGATE_VCPUS.index(size) :]:
        if mib <= FARGATE_MEMORY_MIB[candidate][-1]:
            return candidate, fargate_memory_mib(candidate, mib)
    largest = FARGATE_VCPUS[-1]
    raise QuantityError(
        f"memory {mem_q!r} ({mib} MiB) is more than Fargate allows "
        f"(at most {FARGATE_MEMORY_MIB[largest][-1]} MiB, with {largest} vCPU)"
    )

"""Reading the service's /metrics (Prometheus text format), for tests and benchmarks."""

from __future__ import annotations


def metric_samples(text: str, name: str) -> dict[str, float]:
    """Samples of metric `name`, keyed by their label string (`{a="x",b="y"}`, "" without labels)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            series, _, value = line.rpartition(" ")
            out[series[len(name):]] = float(value)
    return out


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(value for series, value in metric_samples(text, name).items()
               if all(f'{k}="{v}"' in series for k, v in labels.items()))

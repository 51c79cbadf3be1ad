"""Plumbing for the benchmarks: the emulated AWS (aws_batch_emulator.process) and the plugin
server as separate processes (each pinned to its own cores), their CPU time and peak RSS from /proc,
percentiles, the Go plugin's DescribeJobs scheme and the results files."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aws_batch_emulator.process import EmulatorProcess, terminate

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SERVING = re.compile(r"serving gRPC on [^ ]*:(\d+).*metrics on :(\d+)")
# The cores this process may use when it starts (the load generator later pins itself to a subset).
_CORES = sorted(os.sched_getaffinity(0))


# -- /proc ------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) in MB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (proc(5) clear_refs "5"), so a phase's peak can be read."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_split() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, load generator + emulator cores): the first available core for the server and the
    rest for everything else; (None, None) on a single core."""
    if len(_CORES) < 2:
        return None, None
    return {_CORES[0]}, set(_CORES[1:])


def _pin(cpus: set[int] | None, nice: int = 0) -> Any:
    if not cpus and not nice:
        return None

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        if nice:
            os.nice(nice)
    return setup


# -- statistics ----------------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(seconds: Iterable[float]) -> dict[str, Any]:
    values = sorted(seconds)
    ms = [v * 1000 for v in values]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 2) if ms else 0.0,
    }


def diff_counts(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(after) if after.get(k, 0) != before.get(k, 0)}


# -- the Go aws_array plugin's polling, computed from the same job mix ---------------------------------------
@dataclass
class JobMix:
    """Tasks alive (not terminal) at one poll cycle, as propeller saw them."""

    live_singles: int = 0
    # Non-terminal children of each live array task (one entry per array task).
    live_array_children: list[int] = field(default_factory=list)

    @property
    def live_parents(self) -> int:
        return self.live_singles + len(self.live_array_children)


def go_describe_formula(mix: JobMix) -> int:
    """ceil((parents + live children) / 100) DescribeJobs per resync: the Go `aws_array` plugin's job store
    describes every live parent and every live array child at each resync, 100 ids a call."""
    return math.ceil((mix.live_parents + sum(mix.live_array_children)) / 100)


def go_describe_batched(mix: JobMix) -> int:
    """The Go job store's actual batching, per task execution: an `aws-batch` task is an array of one, so it
    sends its id and a phantom `<id>:0` (weight 2, 50 tasks per call); an array weighs 1 + its children, so a
    big one is a batch of its own costing ceil((1 + live children) / 100) calls."""
    return math.ceil(mix.live_singles * 2 / 100) + sum(math.ceil((1 + c) / 100) for c in mix.live_array_children)


EMULATOR_NICE = 10


# -- the emulated AWS ------------------------------------------------------------------------------------
def start_emulator(*, step: float, concurrency: int, cpus: set[int] | None, log_dir: Path,
                   nice: int = 0) -> EmulatorProcess:
    """`python -m aws_batch_emulator` as a child process (its job processes inherit its cores). `nice` lowers its
    priority below the load generator it shares a core with, for latency measurements: it stands in for AWS,
    which runs elsewhere, so its work must not delay the generator reading answers (that would count as
    latency)."""
    return EmulatorProcess("--step", str(step), "--concurrency", str(concurrency), log=log_dir / "emulator.log",
                           cwd=ROOT, preexec_fn=_pin(cpus, nice))


# -- the plugin server -------------------------------------------------------------------------------------
class ServerProcess:
    """`aws-array-plugin serve` as a child process, optionally under cProfile."""

    def __init__(self, config: dict[str, Any], *, env: dict[str, str], cpus: set[int] | None, log_dir: Path,
                 profile: Path | None = None, probe: bool = False, slow_callback_ms: float = 0.0,
                 start_timeout: float = 60.0) -> None:
        self.config_path = log_dir / "server-config.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = log_dir / "server.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.profile = profile
        head = [sys.executable]
        if profile is not None:
            head += ["-m", "cProfile", "-o", str(profile)]
        self.lag_file = log_dir / "loop-lag.json" if probe else None
        if probe:  # the same service, started through benchmarks/serve_probe.py (event-loop diagnostics)
            head += [str(ROOT / "benchmarks" / "serve_probe.py")]
            env = {**env, "BENCH_LAG_FILE": str(self.lag_file), "BENCH_SLOW_CALLBACK_MS": str(slow_callback_ms)}
        else:
            head += ["-m", "aws_array_plugin"]
        cmd = [*head, "serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
               "--config", str(self.config_path), "--log-level", "INFO"]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env={**os.environ, **env}, preexec_fn=_pin(cpus))
        deadline = time.monotonic() + start_timeout
        while True:
            m = _SERVING.search(self.log_path.read_text())
            if m:
                self.port, self.metrics_port = int(m.group(1)), int(m.group(2))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def memory(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as resp:
            text: str = resp.read().decode()
        return text

    def stop(self, timeout: float = 60.0) -> int:
        terminate(self.proc, timeout)
        self._log.close()
        return int(self.proc.returncode)

    @functools.cached_property
    def _probe_data(self) -> dict[str, Any]:
        """What the probe wrote at the server's exit (read once: the stall samples make it large)."""
        if self.lag_file is None or not self.lag_file.exists():
            return {}
        data: dict[str, Any] = json.loads(self.lag_file.read_text())
        return data

    def loop_lags(self) -> list[tuple[float, float]]:
        """(wall time, seconds late) of every event-loop stall > 2 ms seen by the probe (after stop())."""
        return [(float(t), float(lag)) for t, lag in self._probe_data.get("lags", [])]

    def probe_summary(self) -> dict[str, Any]:
        """Objects the garbage collector tracked at exit, how many start-up froze (gc.freeze()), and how long
        the status refresh passes took."""
        data = self._probe_data
        if not data:
            return {}
        passes = sorted(float(took) * 1000 for _, took, _ in data.get("refresh_passes", []))
        return {"gc_tracked_objects_at_exit": int(data.get("tracked_objects_at_exit", 0)),
                "gc_frozen_objects": int(data.get("frozen_objects", 0)),
                "refresh_passes": len(passes),
                "refresh_pass_ms_median": round(passes[len(passes) // 2], 2) if passes else 0.0,
                "refresh_pass_ms_max": round(passes[-1], 2) if passes else 0.0}

    def create_splits(self) -> list[tuple[float, float, float]]:
        """(handler start, seconds before the handler, seconds in it) of every CreateTask the probe timed."""
        return [(float(t), float(a), float(h)) for t, a, h in self._probe_data.get("creates", [])]

    def gc_pauses(self) -> list[tuple[float, int, float]]:
        """(wall time, generation, seconds) of every garbage collection over 2 ms seen by the probe."""
        return [(float(t), int(g), float(d)) for t, g, d in self._probe_data.get("gc_pauses", [])]

    def slow_callbacks(self) -> list[tuple[float, str, float]]:
        """(wall time, what, seconds) of each callback asyncio's debug mode reported as slow."""
        out = []
        pattern = re.compile(r"^(\S+ \S+) WARNING asyncio: Executing (.*) took (\d+\.\d+) seconds")
        for line in self.log_path.read_text().splitlines():
            m = pattern.match(line)
            if m:
                when = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%d %H:%M:%S")) + int(m.group(1)[20:23]) / 1000
                what = re.sub(r" at 0x[0-9a-f]+|/\S+/|:\d+>", "", m.group(2))
                what = re.search(r"coro=<([^>(]+)", what).group(1) if "coro=<" in what else what[:100]  # type: ignore[union-attr]
                out.append((when, what, float(m.group(3))))
        return out

    def errors_logged(self) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines() if " ERROR " in line or "Traceback" in line]


def make_log_dir(scenario: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"aws-array-plugin-bench-{scenario}-"))


def write_results(result: dict[str, Any], out: Path, markdown: Callable[[dict[str, Any]], str]) -> None:
    """`out`.json (the figures) and `out`.md (their table), which is also printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


_SAMPLE = re.compile(r'^(\w+?)(?:_bucket|_sum|_count)\{(.*)\} (\S+)$')


def histograms(text: str, name: str, key: str) -> dict[str, dict[str, float]]:
    """Count, mean and bucket-bound p50/p99 (the upper `le` of the bucket holding it) of a Prometheus
    histogram, per value of label `key` (other labels summed)."""
    buckets: dict[str, dict[float, float]] = {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(name + "_"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        k, value = labels.get(key, ""), float(m.group(3))
        if line.startswith(name + "_bucket"):
            le = float(labels["le"])
            buckets.setdefault(k, {})[le] = buckets.setdefault(k, {}).get(le, 0.0) + value
        elif line.startswith(name + "_sum"):
            sums[k] = sums.get(k, 0.0) + value
        elif line.startswith(name + "_count"):
            counts[k] = counts.get(k, 0.0) + value
    out: dict[str, dict[str, float]] = {}
    for k, n in counts.items():
        if not n:
            continue
        cumulative = sorted(buckets.get(k, {}).items())

        def bound(q: float, cumulative: list[tuple[float, float]] = cumulative, n: float = n) -> float:
            return next((le for le, c in cumulative if c >= q * n), math.inf)

        out[k] = {"count": int(n), "mean_ms": round(sums.get(k, 0.0) / n * 1000, 2),
                  "p50_le_ms": bound(0.5) * 1000, "p99_le_ms": bound(0.99) * 1000}
    return out


def server_side(text: str) -> dict[str, Any]:
    """What the server measured itself: RPC latency per method and AWS call latency per operation."""
    return {"rpc_latency": histograms(text, "aws_array_plugin_rpc_latency_seconds", "method"),
            "aws_call_latency": histograms(text, "aws_array_plugin_aws_call_latency_seconds", "operation")}


def bucket_counts(text: str, name: str) -> dict[str, float]:
    """Cumulative bucket counts of an unlabelled Prometheus histogram, keyed by `le`."""
    out: dict[str, float] = {}
    for m in re.finditer(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def bucket_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    """Per-bucket (not cumulative) counts between two snapshots: {"<=1": n, "<=5": n, ...}."""
    out: dict[str, int] = {}
    previous = 0.0
    for le in sorted(after, key=lambda s: float(s)):
        cumulative = after[le] - before.get(le, 0.0)
        n = int(cumulative - previous)
        previous = cumulative
        if n:
            out[f"<={le.removesuffix('.0')}"] = n
    return out

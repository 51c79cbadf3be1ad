"""The demo's terminal output: a live `rich` table on a TTY, the same facts as plain text lines otherwise
(CI logs, README captures). `rich` is imported only by the TTY view."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from aws_array_plugin_demo.flyte2_executor import ActionAttempt
from aws_array_plugin_demo.propeller import Attempt, phase_name

# A row of the view: a propeller (Flyte 1) task attempt or a Flyte 2 executor action.
Row = Attempt | ActionAttempt

# flytekit's s3fs/aiohttp shutdown message: printed by every job, says nothing about the task.
_NOISE = "'message': 'Unclosed client session'"


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    ok: bool | None = None  # colours the rich panel: green, red, or neutral
    links: list[tuple[str, str]] = field(default_factory=list)  # (name, uri), after the lines


def type_label(row: Row) -> str:
    """The task type, and which Flyte sent it when it is Flyte 2 (`aws-batch` is a type of both)."""
    return f"{row.task_type} (Flyte 2)" if isinstance(row, ActionAttempt) else row.task_type


def children_text(attempt: Row) -> str:
    """Array progress from the service's custom_info (counts of the AWS array job's children)."""
    info = attempt.resource.custom_info
    if "children" not in info:
        return ""
    c = {k: int(v) for k, v in dict(info["children"]).items()}
    need = int(info["minSuccesses"]) if "minSuccesses" in info else c.get("size", 0)
    waiting = c.get("queued", 0) + c.get("starting", 0)
    return (f"{c.get('succeeded', 0)} ok, {c.get('failed', 0)} failed, {c.get('running', 0)} running, "
            f"{waiting} waiting of {c.get('size', 0)} (need {need})")


def links(attempt: Row) -> list[tuple[str, str]]:
    return [(link.name, link.uri) for link in attempt.resource.log_links]


def pretty_log(lines: Sequence[str]) -> tuple[list[str], int]:
    """CloudWatch lines for reading: flytekit's JSON log records become `LEVEL message` (tracebacks keep their
    line breaks). Returns the lines and how many noise lines were left out."""
    out: list[str] = []
    hidden = 0
    for line in lines:
        if _NOISE in line:
            hidden += 1
            continue
        record: Any = None
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
        if isinstance(record, dict) and "message" in record:
            level = str(record.get("levelname", "")).upper()
            text = str(record["message"]).splitlines() or [""]
            out.append(f"{level} {text[0]}".strip())
            out.extend(f"  {t}" for t in text[1:] if t.strip())
        else:
            out.append(line)
    return out, hidden


class View(Protocol):
    def note(self, text: str) -> None: ...
    def progress(self, attempts: Sequence[Row], elapsed: float) -> None: ...
    def stop_progress(self) -> None: ...
    def section(self, section: Section) -> None: ...
    def verdict(self, ok: bool, lines: Sequence[str]) -> None: ...


class PlainView:
    """One line per phase or message change, then plain sections."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._seen: dict[str, tuple[str, str]] = {}

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        self._print(text)

    def progress(self, attempts: Sequence[Row], elapsed: float) -> None:
        width = max(len(a.label) for a in attempts)
        type_width = max(len(type_label(a)) for a in attempts)
        for a in attempts:
            if not a.resource_meta:
                continue
            phase = phase_name(a.resource.phase)
            message = a.resource.message.splitlines()[0] if a.resource.message else ""
            if self._seen.get(a.label) == (phase, message):
                continue
            self._seen[a.label] = (phase, message)
            self._print(f"[{elapsed:6.1f}s] {a.label:<{width}}  {type_label(a):<{type_width}}  {phase:<10} {message}")

    def stop_progress(self) -> None:
        self._print()

    def section(self, section: Section) -> None:
        self._print(f"== {section.title} ==")
        for line in section.lines:
            self._print(f"  {line}")
        for name, uri in section.links:
            self._print(f"    {name}: {uri}")
        self._print()

    def verdict(self, ok: bool, lines: Sequence[str]) -> None:
        self._print(("DEMO OK: " if ok else "DEMO FAILED: ") + (lines[0] if lines else ""))
        for line in lines[1:]:
            self._print(f"  - {line}")


_PHASE_STYLE = {"SUCCEEDED": "bold green", "FAILED": "bold red", "RETRYABLE_FAILED": "bold red",
                "RUNNING": "bold cyan", "QUEUED": "yellow", "INITIALIZING": "yellow", "WAITING_FOR_RESOURCES": "yellow"}


class RichView:
    """A live table (task, type, phase, array children, message, log links), then panels."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console()
        self._live: Any = None

    def note(self, text: str) -> None:
        from rich.markup import escape

        self.console.print(escape(text))

    def _table(self, attempts: Sequence[Row], elapsed: float) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"propeller's and the Flyte 2 executor's view over gRPC  ·  {elapsed:.0f}s",
                      title_justify="left", expand=True)
        table.add_column("task", no_wrap=True)
        table.add_column("type", no_wrap=True)
        table.add_column("phase", no_wrap=True)
        table.add_column("status (arrays: children)", ratio=3)
        table.add_column("log links", ratio=2, no_wrap=True, overflow="ellipsis")
        for a in attempts:
            phase = phase_name(a.resource.phase) if a.resource_meta else "creating"
            log_text = Text()
            for i, (name, uri) in enumerate(links(a)):
                log_text.append(("\n" if i else "") + name, style=f"link {uri}")
            message = a.resource.message.splitlines()[0] if a.resource.message else ""
            table.add_row(a.label, type_label(a), Text(phase, style=_PHASE_STYLE.get(phase, "")),
                          children_text(a) or message, log_text)
        return table

    def progress(self, attempts: Sequence[Row], elapsed: float) -> None:
        from rich.live import Live

        if self._live is None:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.start()
        self._live.update(self._table(attempts, elapsed), refresh=True)

    def stop_progress(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def section(self, section: Section) -> None:
        from rich.markup import escape
        from rich.panel import Panel

        style = {True: "green", False: "red", None: "blue"}[section.ok]
        # Links as clickable names (OSC 8): the URLs are long and would wrap.
        body = "\n".join([*(escape(line) for line in section.lines),
                          *(f"  [link={uri}]{escape(name)}[/link]" for name, uri in section.links)])
        self.console.print(Panel(body, title=escape(section.title), title_align="left", border_style=style))

    def verdict(self, ok: bool, lines: Sequence[str]) -> None:
        from rich.markup import escape

        head = "[bold green]DEMO OK[/]" if ok else "[bold red]DEMO FAILED[/]"
        self.console.print(f"{head}: {escape(lines[0]) if lines else ''}")
        for line in lines[1:]:
            self.console.print(f"  - {escape(line)}")

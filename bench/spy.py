"""Sampling the daemon with py-spy while a benchmark drives it, and summing up.

``py-spy record --format raw`` writes collapsed stacks (``thread (tid): name;f1;f2 N``),
the input of every flame-graph tool (speedscope.app opens it as is). The summary here is
self and total time per function, per thread: the event loop thread is the budget that
matters; aiosqlite's connection thread shows what SQLite costs.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import Procs

LINES = False  # keep line numbers in labels (set by --lines)
FRAME_FILE = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy binary next to this interpreter, or on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Spy:
    """One py-spy recording of a running process."""

    def __init__(self, procs: Procs, pid: int, out: Path, rate: int = 250, extra: Sequence[str] = ()) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.out = out
        self.log = out.with_suffix(".log")
        # --nonblocking keeps py-spy from pausing the daemon; native unwinding needs the pause.
        # --lines (ours, not py-spy's): keep line numbers instead of aggregating by function.
        pause = [] if "--native" in extra else ["--nonblocking"]
        by = [] if "--lines" in extra else ["--function"]
        extra = [x for x in extra if x != "--lines"]
        cmd = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--threads",
               *by, *pause, *extra, "-o", str(out)]  # fmt: skip
        out.unlink(missing_ok=True)
        self.log.unlink(missing_ok=True)
        self.proc = procs.spawn(cmd, self.log)

    def stop(self) -> None:
        """Stop sampling (SIGINT makes py-spy write its file)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class ThreadProfile:
    """Samples of one thread, by function."""

    name: str
    samples: int = 0
    self_: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)


def _label(frame: str) -> str:
    m = FRAME_FILE.match(frame)
    if not m or LINES:
        return frame
    return f"{m['func']} ({m['file']})"


def summarize(raw: Path) -> list[ThreadProfile]:
    """Per-thread self/total samples by function, busiest thread first."""
    threads: dict[str, ThreadProfile] = {}
    by_name: defaultdict[str, int] = defaultdict(int)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        head, name = "?", "?"
        if frames[0].startswith("thread ("):  # "thread (tid): name" with --threads
            head, _, name = frames.pop(0).partition(": ")
        funcs = [_label(f) for f in frames]
        tp = threads.get(head)
        if tp is None:
            by_name[name] += 1
            tp = threads[head] = ThreadProfile(name if by_name[name] == 1 else f"{name}#{by_name[name]}")
        tp.samples += n
        if funcs:
            tp.self_[funcs[-1]] += n
            for f in set(funcs):
                tp.total[f] += n
    return sorted(threads.values(), key=lambda t: -t.samples)


def report(profiles: list[ThreadProfile], rate: int, top: int = 15) -> str:
    """A readable summary: per thread, the top functions by self time."""
    lines: list[str] = []
    all_samples = sum(t.samples for t in profiles) or 1
    for tp in profiles:
        if tp.samples < max(5, all_samples // 100):
            continue
        lines.append(f"thread {tp.name}: {tp.samples} samples ({tp.samples / rate:.2f} s on CPU)")
        lines.append(f"  {'self%':>6} {'total%':>7}  function")
        for func, n in tp.self_.most_common(top):
            lines.append(f"  {100 * n / tp.samples:6.1f} {100 * tp.total[func] / tp.samples:7.1f}  {func}")
        lines.append("")
    return "\n".join(lines)


def as_json(profiles: list[ThreadProfile], top: int = 25) -> list[dict[str, Any]]:
    """The summary for results.json."""
    return [
        {
            "thread": tp.name,
            "samples": tp.samples,
            "self": [[f, n] for f, n in tp.self_.most_common(top)],
            "total": [[f, n] for f, n in tp.total.most_common(top)],
        }
        for tp in profiles
    ]


def main() -> int:
    """Summarise raw py-spy files: ``python bench/spy.py [--lines] bench/out/profile-unbatched.txt``."""
    global LINES
    args = sys.argv[1:]
    if "--lines" in args:
        args.remove("--lines")
        LINES = True
    for path in args:
        print(f"== {path}")
        print(report(summarize(Path(path)), 250))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())

"""Counting the daemon's instructions with valgrind's callgrind while a benchmark drives it.

On a machine shared with other work, rates and even CPU seconds move by 20-30 % from run to
run (other processes take the cores and the caches). The number of
instructions executed for the same work does not: two runs of the same commit agree within
1-2 %. So ``--callgrind`` runs the daemon under callgrind, counting only from the first
POST until the daemon is idle again (start-up and warm-up run uninstrumented, a few times
slower than native), and reports instructions per event, per thread. The daemon runs 30-50 times
slower meanwhile, and valgrind runs one thread at a time, so the rates of such a run mean
nothing; its instruction counts compare commits.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

TOTALS = re.compile(rb"^totals: (\d+)$", re.M)


def available() -> bool:
    """valgrind and callgrind_control are installed."""
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def prefix(out: Path) -> list[str]:
    """The command prefix that runs a program under callgrind, uninstrumented until told,
    its counts kept per thread in ``out/callgrind.<pid>…``."""
    out.mkdir(parents=True, exist_ok=True)
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
            f"--callgrind-out-file={out}/callgrind.%p"]  # fmt: skip


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=60)


def start(pid: int) -> None:
    """Start counting (the process runs instrumented from now on)."""
    _control(pid, "--instr=on")


def stop(pid: int) -> None:
    """Write what was counted since ``start`` (dump 1) and stop counting."""
    _control(pid, "--dump")
    _control(pid, "--instr=off")


def instructions(out: Path, pid: int) -> dict[int, int]:
    """Instructions per thread (1 is the main thread) between ``start`` and ``stop``: the
    first dump's files, ``callgrind.<pid>.1-<thread>``."""
    counts: dict[int, int] = {}
    for path in out.glob(f"callgrind.{pid}.1-*"):
        m = TOTALS.search(path.read_bytes())
        counts[int(path.name.rsplit("-", 1)[1])] = int(m.group(1)) if m else 0
    return counts

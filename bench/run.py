#!/usr/bin/env python3
"""hookd's benchmark suite: ``python bench/run.py [--quick] [--only NAME ...] [--profile | --callgrind]``.

Starts a receiver, the real daemon (``hookd run``) with generated configs and the load
generator, prints a table of figures against ceilings measured in the same run, and
writes ``bench/out/results-<mode>.json`` and ``bench/out/bench-<mode>.png``. See
bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import callgrind
from harness import BenchError, CpuWatch, Procs, machine, session, start_server
from peers import peers
from scenarios import SCENARIOS as DAEMON_SCENARIOS
from scenarios import Ctx, Row, Scale
from strict import strict_catalogue

# The daemon benchmarks, the in-process measurement of the strict catalogue, then the peers
# (Celery and arq doing the unbatched benchmark's job; skipped without redis-server).
SCENARIOS = {**DAEMON_SCENARIOS, "strict": strict_catalogue, "peers": peers}

OUT = Path(__file__).resolve().parent / "out"


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width table."""
    head = ("benchmark", "figure", "hookd", "ceiling", "ratio", "target", "ok")
    cells = [
        (r.bench, r.figure, r.value, r.ceiling, "" if r.ratio is None else f"{r.ratio:.2f}", r.target,
         "" if r.ok is None else ("yes" if r.ok else "NO"))
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]
    right = {2, 3, 4}

    def line(c: tuple[str, ...]) -> str:
        return "  ".join(
            str(x).rjust(w) if i in right else str(x).ljust(w) for i, (x, w) in enumerate(zip(c, widths, strict=True))
        )

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep, *(line(c) for c in cells)])


async def run(args: argparse.Namespace, procs: Procs, workdir: Path) -> dict[str, Any]:
    """Every selected benchmark, each bounded in time; failures are reported, not fatal."""
    scale = Scale.quick() if args.quick else Scale.full()
    names = args.only or list(SCENARIOS)
    budget = (300.0 if args.quick else 1500.0) * (10 if args.callgrind else 1)  # per benchmark
    results: dict[str, Any] = {"machine": machine(), "mode": "quick" if args.quick else "full", "scale": vars(scale)}
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['platform']}")
    print(f"hookd {m['hookd']} ({m['commit']}), mode {results['mode']}, benchmarks: {', '.join(names)}\n", flush=True)
    receiver = await start_server(procs, workdir, "receiver", args.timeout + 60)
    async with session() as s:
        ctx = Ctx(procs, workdir, args.out, receiver, s, scale, args.profile, args.profile_args.split(),
                  callgrind=args.callgrind)  # fmt: skip
        for name in names:
            t0 = time.monotonic()
            print(f"[{time.strftime('%H:%M:%S')}] {name} …", flush=True)
            before = len(ctx.rows)
            watch = CpuWatch()
            try:
                results[name] = await asyncio.wait_for(SCENARIOS[name](ctx), budget)
            except (BenchError, TimeoutError, OSError, AssertionError) as exc:
                msg = f"timed out after {budget:.0f} s" if isinstance(exc, TimeoutError) else str(exc)
                print(f"  FAILED: {msg}", flush=True)
                traceback.print_exc(file=sys.stderr)
                ctx.rows.append(Row(name, "FAILED", msg.splitlines()[0][:60] if msg else type(exc).__name__))
                results[name] = {"error": msg}
            for r in ctx.rows[before:]:
                print(f"  {r.figure.strip()}: {r.value}" + (f" (ceiling {r.ceiling}, ratio {r.ratio:.2f})"
                                                            if r.ratio is not None else ""))  # fmt: skip
            other, steal = watch.others()
            noise = {"other_cores": round(other, 3), "steal_cores": round(steal, 3)}
            if isinstance(results.get(name), dict):
                results[name]["noise"] = noise
            print(f"  ({time.monotonic() - t0:.1f} s; other processes used {other:.2f} cores, steal {steal:.2f})",
                  flush=True)  # fmt: skip
        for d, _ in ctx.keep.values():
            await d.stop()
        ctx.keep.clear()
        results["rows"] = [vars(r) for r in ctx.rows]
        if ctx.profiles:
            results["profiles"] = ctx.profiles
        print()
        print(table(ctx.rows))
    return results


def main() -> int:
    """Parse flags, run, report; always clean up the children."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="scaled down, a smoke check in about two minutes")
    p.add_argument("--only", action="append", choices=list(SCENARIOS), metavar="NAME",
                   help=f"run only this benchmark (repeatable): {', '.join(SCENARIOS)}")  # fmt: skip
    p.add_argument("--profile", action="store_true",
                   help="sample the daemon with py-spy during the unbatched and batched runs "
                        "(their figures are then distorted; use for the profile only)")  # fmt: skip
    p.add_argument("--profile-args", default="", help="extra py-spy record flags, e.g. '--native' or '--gil'")
    p.add_argument("--callgrind", action="store_true",
                   help="count the daemon's instructions per event with valgrind's callgrind during the unbatched "
                        "and batched runs (their rates are then meaningless; the counts compare commits)")  # fmt: skip
    p.add_argument("--strict", action="store_true", help="exit 3 when a figure misses its target")
    p.add_argument("--out", type=Path, default=OUT, help="where results, plot and profiles go (default bench/out)")
    p.add_argument("--workdir", type=Path, help="where daemons keep their stores (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (stores and logs) afterwards")
    p.add_argument("--timeout", type=float, help="stop everything after this many seconds (default 600 quick, "
                   "3600 full)")  # fmt: skip
    args = p.parse_args()
    if args.callgrind and (args.profile or not callgrind.available()):
        p.error("--callgrind needs valgrind and callgrind_control installed, and cannot go with --profile")
    args.timeout = args.timeout or (600.0 if args.quick else 3600.0)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="hookd-bench-", dir=args.workdir))
    procs = Procs()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    mode = "quick" if args.quick else "full"
    suffix = mode + ("-profile" if args.profile else "") + ("-callgrind" if args.callgrind else "")
    status = 0
    try:
        results = uvloop.run(asyncio.wait_for(run(args, procs, workdir), args.timeout))
        path = args.out / f"results-{suffix}.json"
        path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2, default=str))
        print(f"\nresults: {path}")
        try:
            from plot import plot

            png = args.out / f"bench-{suffix}.png"
            plot(results, png)
            print(f"plot:    {png}")
        except ImportError as exc:
            print(f"plot skipped ({exc}); pip install matplotlib")
        if any(isinstance(v, dict) and "error" in v for v in results.values()):
            status = 1
        elif args.strict and any(r.get("ok") is False for r in results.get("rows", [])):
            status = 3
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the children", file=sys.stderr)
        status = 130
    except TimeoutError:
        print(f"\nthe whole run passed --timeout {args.timeout:.0f} s; stopping", file=sys.stderr)
        status = 2
    finally:
        procs.cleanup()
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""One PNG of a run's results (matplotlib, Agg backend): ratios against the ceilings,
ingest latency, timer lateness, memory, recovery and the slow-receiver timeline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeGuard

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes


def _cdf(ax: Axes, values: list[float], label: str) -> None:
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return
    ys = [(i + 1) / len(xs) * 100 for i in range(len(xs))]
    ax.plot(xs, ys, label=label)


def _missing(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not run", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _ok(r: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(r, dict) and "error" not in r


def plot(results: dict[str, Any], path: Path) -> None:  # noqa: C901 - one panel after another, each drawn if it ran
    """Draw the figures that ran; a benchmark that did not run leaves its panel marked."""
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    m = results["machine"]
    fig.suptitle(f"hookd {m['hookd']} ({m['commit']}) — {results['mode']} run — {m['cpu']}, {m['cores']} cores, "
                 f"Python {m['python']}")  # fmt: skip

    # Ratios against the ceilings.
    ax = axes[0][0]
    bars: list[tuple[str, float, float | None]] = []
    for key, label, target in (("unbatched", "unbatched\ndeliveries", 0.8), ("batched", "batched\nevents", 0.5),
                               ("slow", "slow receiver\n(vs conc/latency)", 1.0)):  # fmt: skip
        r = results.get(key)
        if _ok(r):
            bars.append((label, r["ratio"], target))
    r = results.get("peers")
    if _ok(r):  # the peers doing the unbatched job: grey, no target
        bars += [(f"{name}\n(unbatched job)", r[name]["ratio"], None) for name in ("celery", "arq") if name in r]
    if bars:
        xs = range(len(bars))
        colors = ["tab:grey" if t is None else "tab:green" if v >= t else "tab:red" for _, v, t in bars]
        ax.bar(xs, [b[1] for b in bars], color=colors)
        for x, (_, v, t) in zip(xs, bars, strict=True):
            if t is not None:
                ax.hlines(t, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
            ax.text(x, v, f"{v:.2f}", ha="center", va="bottom")
        ax.set_xticks(list(xs), [b[0] for b in bars])
        ax.set_ylabel("rate / ceiling (dashed: hookd's target)")
        ax.set_title("throughput ratios")
    else:
        _missing(ax, "throughput")

    # Ingest latency.
    ax = axes[0][1]
    r = results.get("latency")
    if _ok(r):
        for name, v in r.items():
            if "latencies_ms" in v:
                _cdf(ax, v["latencies_ms"], f"{name}: p99 {v['p99']:.1f} ms")
        if "bare" in r:
            ax.axvline(
                r["bare"]["p99"], color="grey", linestyle="dotted", label=f"bare server p99 {r['bare']['p99']:.1f} ms"
            )
        ax.axvline(10, color="black", linestyle="dashed", label="target p99 10 ms")
        ax.set_xscale("log")
        ax.set_xlabel("ingest latency from scheduled start (ms)")
        ax.set_ylabel("% of requests")
        ax.set_title("ingest latency, open loop 2,000 events/s")
        ax.legend(fontsize=8)
    else:
        _missing(ax, "latency")

    # Timer lateness.
    ax = axes[0][2]
    r = results.get("timers")
    if _ok(r):
        for kind in ("memory", "spool"):
            v = r[kind]
            _cdf(ax, v["arrival_ms"], f"{kind}: arrival at receiver")
            _cdf(ax, v["fired_ms"], f"{kind}: timer fired (created_at)")
        ax.axvline(50, color="black", linestyle="dashed", label="50 ms")
        ax.axvline(1000, color="grey", linestyle="dotted", label="1 poll interval")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("lateness after deadline (ms)")
        ax.set_ylabel("% of batches")
        ax.set_title(f"batch timers, {r['memory']['keys']:,} open keys")
        ax.legend(fontsize=7)
    else:
        _missing(ax, "timers")

    # Memory.
    ax = axes[1][0]
    r = results.get("memory")
    if _ok(r):
        vals = [r["rss_empty"] / 2**20, r["rss_loaded"] / 2**20, r["rss_peak"] / 2**20]
        ax.bar(["empty", f"{r['n']:,} spooled", "peak"], vals, color=["tab:blue", "tab:orange", "tab:grey"])
        for x, v in enumerate(vals):
            ax.text(x, v, f"{v:.0f} MiB", ha="center", va="bottom")
        ax.set_ylabel("resident memory (MiB)")
        ax.set_title("daemon RSS")
    else:
        _missing(ax, "memory")

    # Recovery.
    ax = axes[1][1]
    r = results.get("recovery")
    if _ok(r):
        labels = [f"{r['n']:,} spooled items", f"{r['n']:,} queued deliveries"]
        vals = [r["spooled"]["seconds"], r["deliveries"]["seconds"]]
        ax.bar(labels, vals, color=["tab:green" if v <= 10 else "tab:red" for v in vals])
        for x, v in enumerate(vals):
            ax.text(x, v, f"{v:.2f} s", ha="center", va="bottom")
        ax.axhline(10, color="black", linestyle="dashed", label="target 10 s")
        ax.set_ylabel("process start → 'started' (s)")
        ax.set_title("recovery")
        ax.legend(fontsize=8)
    else:
        _missing(ax, "recovery")

    # Slow receiver.
    ax = axes[1][2]
    r = results.get("slow")
    if _ok(r):
        pts = r["fast_points"]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=4, label="fast webhook: delivery latency (ms)")
        ax.set_xlabel("seconds since the slow items were posted")
        ax.set_ylabel("fast webhook latency (ms)")
        ax2 = ax.twinx()
        done = r["slow_done"]
        ax2.plot(done, range(1, len(done) + 1), color="tab:red", label="slow webhook: items done")
        ax2.set_ylabel("slow items done", color="tab:red")
        ax.set_title(f"slow receiver: {r['rate']:.1f} items/s vs {r['expected']:.0f} expected")
        ax.legend(loc="upper left", fontsize=8)
    else:
        _missing(ax, "slow")

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""Shared helpers for benchmarks: machine facts, result lines, peer runners. Benchmarks print their figures and
the machine, and append one JSON line per result to bench/results/<name>.jsonl."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("PLANTGUARD_PEERS", HERE.parent.parent / "shared" / "peers"))


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    import duckdb
    import numpy

    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory": mem, "os": platform.platform(),
        "python": sys.version.split()[0], "numpy": numpy.__version__, "duckdb": duckdb.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def print_machine() -> dict:
    m = machine()
    print(f"machine: {m['cpu']} x{m['cores']}, {m['memory']}, {m['os']}, Python {m['python']}, "
          f"numpy {m['numpy']}, duckdb {m['duckdb']}, {m['date']}")
    return m


def record(bench: str, result: dict) -> None:
    result = {"bench": bench, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}
    print("RESULT " + json.dumps(result), flush=True)
    out = HERE / "results" / f"{bench}.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(result) + "\n")


def run_peer_storage(engine: str, repeats: int = 1, extra_env: dict | None = None) -> dict | None:
    """Runs ../shared/peers/run_storage.sh for one engine in this run and returns its SUMMARY line (or None
    when the peer scripts are not there). The script installs what it needs and stops what it starts."""
    script = PEERS / "run_storage.sh"
    if not script.exists():
        print(f"peer scripts not found at {PEERS}; skipping the {engine} peer")
        return None
    env = {**os.environ, "REPEATS": str(repeats), **(extra_env or {})}
    print(f"running peer: {script.name} {engine} (repeats={repeats}) ...", flush=True)
    proc = subprocess.run(["bash", str(script), engine], env=env, capture_output=True, text=True, timeout=1800)
    summaries = [json.loads(line[len("SUMMARY "):]) for line in proc.stdout.splitlines() if line.startswith("SUMMARY ")]
    if proc.returncode != 0 or not summaries:
        print(f"peer {engine} failed (exit {proc.returncode}): {proc.stderr[-500:]}")
        return None
    return summaries[0] if len(summaries) == 1 else {"modes": summaries, **summaries[0]}


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size from /proc (no psutil needed)."""
    path = f"/proc/{pid or 'self'}/status"
    for line in Path(path).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def ab_rounds(run, repeats: int, label: str, machine: dict) -> dict:
    """`run(flag) -> points/s` with the feature on (True) and off (False), alternating which goes first each round:
    per-round ratios and medians, printed and returned."""
    import statistics

    on, off, ratios = [], [], []
    for r in range(repeats):
        pair = {flag: run(flag) for flag in ((True, False) if r % 2 == 0 else (False, True))}
        on.append(pair[True])
        off.append(pair[False])
        ratios.append(pair[True] / pair[False])
        print(f"  round {r + 1}: on {pair[True]:,.0f}  off {pair[False]:,.0f}  ratio {ratios[-1]:.2f}")
    out = {"on_median": round(statistics.median(on)), "off_median": round(statistics.median(off)),
           "ratio_median": round(statistics.median(ratios), 3), "ratios": [round(x, 3) for x in ratios], "machine": machine}
    print(f"{label} on/off: median {out['on_median']:,} vs {out['off_median']:,} points/s; per-round ratio median {out['ratio_median']}")
    return out

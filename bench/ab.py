"""Benchmarks of two checkouts side by side, in alternating rounds on the same machine (before, after, before,
after ...), so that a change is judged against the code before it under the same load.

    python bench/ab.py --before ../before --rounds 3 pipeline_ingest="--backend embedded --no-peers" query memory

Each benchmark runs as its own process with PYTHONPATH set to the checkout's src/; the figures are the RESULT lines
it prints. For every numeric figure both sides report, the table shows each side's median over the rounds and the
ratio after / before (for times, above 1 is slower; for rates, below 1 is slower). The whole process's wall time
is a figure too. One JSON line per benchmark goes to bench/results/ab.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import print_machine, record

HERE = Path(__file__).resolve().parent


def run(tree: Path, name: str, args: list[str]) -> tuple[dict, float]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(tree / "bench" / f"{name}.py"), *args], cwd=tree, env=env,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{name} failed in {tree}")
    figures: dict[str, float] = {}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            flat(json.loads(line[7:]), "", figures)
    return figures, wall


def flat(d, prefix: str, out: dict) -> None:
    if isinstance(d, dict):
        for k, v in d.items():
            if k not in ("machine", "at", "bench"):
                flat(v, f"{prefix}{k}.", out)
    elif isinstance(d, list) and d and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in d):
        flat(statistics.median(d), prefix, out)  # a figure per repeat: its median
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        key = prefix.rstrip(".")
        n = 2
        while key in out:  # a benchmark printing several results: number them
            key = f"{prefix.rstrip('.')}#{n}"
            n += 1
        out[key] = float(d)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, type=Path, help="checkout of the commit before the change")
    ap.add_argument("--after", type=Path, default=HERE.parent, help="checkout with the change (default: this one)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("benches", nargs="+", help='name or name="its arguments"')
    a = ap.parse_args()
    m = print_machine()
    for spec in a.benches:
        name, _, argline = spec.partition("=")
        args = argline.split()
        sides: dict[str, list[tuple[dict, float]]] = {"before": [], "after": []}
        try:
            for r in range(a.rounds):
                for side, tree in (("before", a.before.resolve()), ("after", a.after.resolve())):
                    sides[side].append(run(tree, name, args))
                    print(f"  {name} round {r + 1} {side}: {sides[side][-1][1]:.1f} s", flush=True)
        except SystemExit as e:  # one benchmark failing must not lose the others' rounds
            print(f"{name}: {e}", file=sys.stderr, flush=True)
            continue
        keys = sorted(set.intersection(*(set(f) for f, _ in sides["before"] + sides["after"])))
        rows = {"wall_s": (statistics.median(w for _, w in sides["before"]), statistics.median(w for _, w in sides["after"]))}
        for k in keys:
            rows[k] = (statistics.median(f[k] for f, _ in sides["before"]), statistics.median(f[k] for f, _ in sides["after"]))
        print(f"{name} {argline}".strip())
        print(f"  {'figure':60s} {'before':>14s} {'after':>14s} {'after/before':>12s}")
        for k, (b, af) in rows.items():
            ratio = af / b if b else float("nan")
            print(f"  {k[:60]:60s} {b:14.6g} {af:14.6g} {ratio:12.3f}")
        record("ab", {"benchmark": name, "args": argline, "rounds": a.rounds,
                      "figures": {k: {"before": b, "after": af} for k, (b, af) in rows.items()},
                      "runs": {s: [f for f, _ in v] for s, v in sides.items()}, "machine": m})
    return 0


if __name__ == "__main__":
    sys.exit(main())

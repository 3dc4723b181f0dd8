"""Runs every benchmark in turn (`make bench`); each prints its figures and the machine, and appends its results
to bench/results/. Give names to run a subset: `make bench ARGS="query memory"`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["pipeline_ingest", "mqtt_ingest", "query", "memory", "store_choice", "modbus_poll", "modbus_vs_tbgw",
         "gateway_recovery", "analytics_throughput", "spc_alarm_rate", "skab_eval", "cmapss_eval", "web_dashboard", "reject_throughput", "auth_overhead", "posture_audit", "at_rest"]


def main(argv: list[str]) -> int:
    names = argv or ORDER
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(ORDER)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n=== bench/{name}.py ===", flush=True)
        if subprocess.call([sys.executable, str(HERE / f"{name}.py")]) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

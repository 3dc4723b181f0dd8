"""Every drill scenario on the simulated line: detection and recovery times (simulated time, so a busy machine
does not change them) and data lost, against each affected service's RTO and RPO; the wall time of each drill.

    python bench/continuity_drills.py
"""

from __future__ import annotations

import tempfile
import time

from common import print_machine, record
from plantguard.sim.drills import SCENARIOS, DrillPlant


def main() -> None:
    m = print_machine()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        plant = DrillPlant(d)
        try:
            for name in SCENARIOS:
                t = time.perf_counter()
                j = plant.drill(name)
                wall = time.perf_counter() - t
                svc = "; ".join(f"{s['service']} disrupted {s['disrupted_s']:.0f} s / RTO {s['rto_s']:.0f} s, lost {s['lost_s']:.0f} s / RPO {s['rpo_s']:.0f} s"
                                for s in j.services) or "no service affected"
                print(f"{name:17} {j.status:7} detection {j.detection_s} s, recovery {j.recovery_s} s, lost {j.data['lost_readings']} of "
                      f"{j.data['generated']:,} readings; {svc}; {wall:.1f} s wall")
                rows.append({"scenario": name, "status": j.status, "detection_s": j.detection_s, "recovery_s": j.recovery_s,
                             "lost_readings": j.data["lost_readings"], "generated": j.data["generated"], "services": j.services,
                             "wall_s": round(wall, 1)})
        finally:
            plant.close()
    record("continuity_drills", {"drills": rows, "machine": m})


if __name__ == "__main__":
    main()

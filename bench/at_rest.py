"""What sealing learned state and secrets at rest costs: an analytics checkpoint of N anomaly slots and N SPC
slots written and read as before (plain pickle, any class) and as now (HMAC-SHA256 seal, a loader that builds
only state classes), in the same run; and sealing/opening one TOTP secret.

    python bench/at_rest.py [--slots 100000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time

from common import print_machine, record

from plantguard import checkpoints
from plantguard.analytics.anomaly.bank import RobustZBank
from plantguard.analytics.spc.bank import SpcBank
from plantguard.keys import Keyring
from plantguard.plant_analytics.processor import _State
from plantguard.security.sealed import SecretBox


def _state(n: int) -> _State:
    st = _State()
    rz, spc = RobustZBank(capacity=n), SpcBank(capacity=n)
    for _ in range(n):
        rz.add()
        spc.add()
    st.rz, st.spc = rz, spc
    return st


def _median_s(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slots", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    m = print_machine()
    st, ring = _state(a.slots), Keyring.generate()
    plain = pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL)
    sealed = checkpoints.dumps(st, "analytics", ring)
    res = {"slots": a.slots, "bytes": len(sealed)}
    for name, fn in (("write_plain_s", lambda: pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL)),
                     ("write_sealed_s", lambda: checkpoints.dumps(st, "analytics", ring)),
                     ("read_plain_s", lambda: pickle.loads(plain)),
                     ("read_sealed_s", lambda: checkpoints.loads(sealed, "analytics", ring))):
        res[name] = round(_median_s(fn, a.repeats), 4)
    res["write_ratio"] = round(res["write_sealed_s"] / res["write_plain_s"], 2)
    res["read_ratio"] = round(res["read_sealed_s"] / res["read_plain_s"], 2)
    box = SecretBox(ring)
    token = box.seal("JBSWY3DPEHPK3PXP", "users.totp_secret:alice")
    n = 20_000
    res["totp_open_us"] = round(_median_s(lambda: [box.open(token, "users.totp_secret:alice") for _ in range(n)], 3) / n * 1e6, 2)
    print(f"checkpoint of {a.slots:,} anomaly + {a.slots:,} SPC slots, {len(sealed) / 1e6:.1f} MB: write {res['write_plain_s']:.3f} s plain, "
          f"{res['write_sealed_s']:.3f} s sealed (x{res['write_ratio']}); read {res['read_plain_s']:.3f} s plain, "
          f"{res['read_sealed_s']:.3f} s sealed and restricted (x{res['read_ratio']}); opening a sealed TOTP secret "
          f"{res['totp_open_us']} us (medians of {a.repeats})")
    record("at_rest", {**res, "machine": m})


if __name__ == "__main__":
    main()

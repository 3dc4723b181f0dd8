"""MQTT ingest: Mosquitto (QoS 1, JSON messages of 100 points) -> plantguard's MQTT source -> pipeline (alarms on)
-> store. A separate publisher process sends N pre-built messages as fast as paho allows (inflight window 1000);
plantguard acknowledges each only after its readings are durably written. Rate = readings stored per second from
the first stored batch to the last.

The ceiling is measured in the same run on the same broker: the peers' raw paho -> Mosquitto -> paho benchmark
(../shared/peers/mqtt_bench.py, scenario batch100_q1_json: the subscriber only runs json.loads).

    python bench/mqtt_ingest.py [--backend embedded|postgres|both] [--messages 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from common import ab_rounds, PEERS, print_machine, record
from pipeline_ingest import NS, plant
from plantguard.config import parse_config
from plantguard.runtime import Platform
from plantguard.testing.mosquitto import MosquittoBroker

PUBLISHER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
port, n, topic = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ns = {ns}
t0 = int(time.time() * 1000) - 10 * n  # in the past, unique per reading
payloads = []
for i in range(n):  # pre-built, so the loop measures MQTT and plantguard, not json.dumps
    rows = [{{"p": f"s{{(i * 100 + j) % ns:04d}}", "t": t0 + (i * 100 + j) // ns, "v": 20.0 + (j % 17) * 0.37}} for j in range(100)]
    payloads.append(json.dumps({{"readings": rows}}).encode())
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv311)
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port, keepalive=60)
c.loop_start()
while not c.is_connected():
    time.sleep(0.005)
print("READY", flush=True)
sys.stdin.readline()
t = time.perf_counter()
infos = [c.publish(topic, p, qos=1) for p in payloads]
for info in infos:
    info.wait_for_publish(120)
dt = time.perf_counter() - t
c.disconnect(); c.loop_stop()
print(json.dumps({{"sent": n, "acked": sum(i.is_published() for i in infos), "pub_seconds": dt}}), flush=True)
"""


def ceiling(port: int, n: int, repeats: int) -> dict | None:
    script = PEERS / "mqtt_bench.py"
    if not script.exists():
        print(f"peer script not found at {script}; no ceiling measured")
        return None
    out = subprocess.run([sys.executable, str(script), "run", "--port", str(port), "--only", "batch100_q1_json",
                          "--repeats", str(repeats), "--n-batch", str(n)], capture_output=True, text=True, timeout=900)
    text = out.stdout
    if "SUMMARY " not in text:
        print(f"ceiling run failed: {out.stderr[-400:]}")
        return None
    return json.loads(text.split("SUMMARY ", 1)[1])["batch100_q1_json"]


def run_once(broker: MosquittoBroker, storage: dict, n: int, behaviour: bool = True) -> dict:
    doc = plant(NS, storage, behaviour)
    doc["mqtt"] = {"enabled": True, "host": broker.host, "port": broker.port, "client_id": f"plantguard-bench-{time.time_ns()}"}
    doc["ingest"]["max_future"] = "5m"
    cfg = parse_config(doc)
    platform = Platform(cfg).start()
    topic = "plantguard/v1/dev/b/a/l/x/d"
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER.format(ns=NS), str(broker.port), str(n), topic],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert pub.stdout.readline().strip() == "READY"
        src = platform.sources[0]
        deadline = time.monotonic() + 30
        while not src.health().get("connected") and time.monotonic() < deadline:
            time.sleep(0.01)
        pub.stdin.write("go\n")
        pub.stdin.flush()
        st = platform.pipeline.stats
        total = n * 100
        first_t = first_n = None
        deadline = time.monotonic() + 300
        while st.accepted + st.duplicates < total and time.monotonic() < deadline:
            if first_t is None and st.accepted > 0:
                first_t, first_n = time.perf_counter(), st.accepted
            time.sleep(0.002)
        done_t = time.perf_counter()
        pout, _ = pub.communicate(timeout=120)
    finally:
        if pub.poll() is None:
            pub.kill()
    pr = json.loads(pout.strip().splitlines()[-1])
    stored = platform.store.counts()["raw"]
    stats = platform.pipeline.stats
    platform.stop()
    assert stored == total, (stored, total)
    rate = (total - first_n) / (done_t - first_t)
    return {"points_per_s": rate, "stored": stored, "acked_by_broker": pr["acked"], "duplicates": stats.duplicates,
            "rejected": stats.rejected}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["embedded", "postgres", "both"], default="both")
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--behaviour-ab", action="store_true",
                    help="embedded only: behavioural detection on and off, alternating, per-round ratios")
    a = ap.parse_args()
    m = print_machine()
    with tempfile.TemporaryDirectory() as wd, MosquittoBroker(workdir=wd) as broker:
        if a.behaviour_ab:
            def one(flag):
                with tempfile.TemporaryDirectory() as d:
                    return run_once(broker, {"backend": "embedded", "data_dir": d}, a.messages, flag)["points_per_s"]

            record("mqtt_ingest_behaviour_ab", ab_rounds(one, a.repeats, "MQTT, behavioural detection", m))
            return
        ceil = ceiling(broker.port, a.messages, a.repeats)
        if ceil:
            print(f"ceiling (raw paho -> mosquitto -> paho, QoS 1, 100-point JSON): {ceil['points_per_s_median']:,} points/s "
                  f"(msgs/s min {ceil['min']:,} max {ceil['max']:,})")
        for backend in (["embedded", "postgres"] if a.backend == "both" else [a.backend]):
            runs = []
            for r in range(a.repeats):
                if backend == "embedded":
                    with tempfile.TemporaryDirectory() as d:
                        runs.append(run_once(broker, {"backend": "embedded", "data_dir": d}, a.messages))
                else:
                    from plantguard.testing.pg import PostgresServer

                    with PostgresServer() as pg:
                        runs.append(run_once(broker, {"backend": "postgres", "postgres_dsn": pg.dsn}, a.messages))
                print(f"  {backend} run {r + 1}: {runs[-1]['points_per_s']:,.0f} points/s, stored {runs[-1]['stored']:,}")
            rates = [x["points_per_s"] for x in runs]
            out = {"backend": backend, "messages": a.messages, "points_per_message": 100, "repeats": a.repeats,
                   "points_per_s_median": round(statistics.median(rates)), "points_per_s_min": round(min(rates)),
                   "points_per_s_max": round(max(rates)), "machine": m}
            if ceil:
                out["ceiling_points_per_s"] = ceil["points_per_s_median"]
                out["ratio_to_ceiling"] = round(out["points_per_s_median"] / ceil["points_per_s_median"], 2)
            print(f"{backend}: median {out['points_per_s_median']:,} points/s"
                  + (f" = {out['ratio_to_ceiling']} x the ceiling measured in this run" if ceil else ""))
            record("mqtt_ingest", out)


if __name__ == "__main__":
    main()

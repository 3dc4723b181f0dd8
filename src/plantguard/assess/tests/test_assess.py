"""Assessment: judging probe results, the reports (Markdown and self-contained HTML), the runner with connectors
that cannot be probed, and `plantguard assess` end to end with a reachable and an unreachable link."""

from __future__ import annotations

import asyncio
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml
from typer.testing import CliRunner

from plantguard.assess import (ATTENTION, COMPATIBLE, UNREACHABLE, Assessment, Skipped, judge, probe_all, render_html,
                               render_markdown)
from plantguard.cli.main import app
from plantguard.connectors.base import Connector, ConnectorConfig, ProbeItem, ProbeResult

FIXTURE = Path(__file__).resolve().parents[2] / "connectors" / "replay" / "tests" / "data" / "pump_skab_like.csv"
T0 = 1_748_851_200_000_000  # 2025-06-02T08:00:00Z


def hand_built() -> Assessment:
    good = ProbeResult("modbus", "s1/a1/l1/filler/plc1", "10.0.0.5:502", True, connect_ms=3.2,
                       items=[ProbeItem("holding 0-24", True, "25 registers", 4.1), ProbeItem("coils 0-7", True, "8 bits", 3.9)],
                       latency_ms_p50=4.0, latency_ms_p95=6.5, safe_poll_rps=40.0, planned_rps=4.0)
    busy = ProbeResult("modbus", "s1/a1/l1/filler/plc2", "10.0.0.6:502", True, connect_ms=2.0,
                       items=[ProbeItem("holding 100-124", True, "", 9.0),
                              ProbeItem("holding 900-901", False, "exception 2: illegal data address | <script>x</script>")],
                       latency_ms_p50=9.0, latency_ms_p95=31.0, safe_poll_rps=20.0, planned_rps=30.0,
                       notes=["latency rose above 3x idle at 25 requests/s"])
    down = ProbeResult("modbus", "s1/a1/l1/capper/plc3", "10.0.0.7:502", False, risks=["cannot connect to 10.0.0.7:502: refused"])
    plain = ProbeResult("opcua", "s1/a1/l1/labeler/srv", "opc.tcp://10.0.0.8:4840", True, connect_ms=40.0,
                        items=[ProbeItem("ns=2;s=Speed", True, "12.5", 2.0)], latency_ms_p50=2.0, latency_ms_p95=3.0,
                        safe_poll_rps=50.0, planned_rps=1.0, risks=["security mode None: traffic is neither signed nor encrypted"])
    links = [judge(r) for r in (good, busy, down, plain)]
    for la, (name, typ) in zip(links, [("line1-plcs", "modbus")] * 3 + [("labeler", "opcua")]):
        la.connector, la.type = name, typ
    return Assessment(links, [Skipped("line1-mqtt", "sparkplug", "connector type 'sparkplug' has no probe")], T0,
                      "plant.yaml", 50.0, 5.0)


def test_judge_classifies_links():
    a = hand_built()
    good, busy, down, plain = a.links
    assert good.status == COMPATIBLE and not good.blocking and good.load_pct == 10.0 and good.within_budget
    assert busy.status == ATTENTION and busy.blocking and busy.within_budget is False and busy.load_pct == 150.0
    assert any("1 of 2 item(s) could not be read: holding 900-901" in f for f in busy.findings)
    assert any("exceeds the safe rate of 20 requests/s (150% load)" in f for f in busy.findings)
    assert down.status == UNREACHABLE and down.blocking and "refused" in down.findings[0]
    assert plain.status == ATTENTION and not plain.blocking  # a risk alone is reported, not failed
    assert a.counts() == {"compatible": 1, "needs attention": 2, "unreachable": 1, "not assessable": 1}
    assert not a.ok
    assert Assessment([good, plain], [], T0).ok


def test_markdown_report():
    md = render_markdown(hand_built())
    assert md.startswith("# plantguard assessment\n")
    assert "**FAIL: 1 compatible, 2 needs attention, 1 unreachable, 1 not assessable**" in md
    assert "- **generated:** 2025-06-02T08:00:00Z" in md
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in summary.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| compatible", "| needs attention", "| unreachable", "| needs attention"]
    assert "| compatible | line1-plcs (modbus) | s1/a1/l1/filler/plc1 | 10.0.0.5:502 | yes | 2/2 | 4.0 / 6.5 | 40 | 4 | 10% |" in md
    assert "| 150% |" in md and "| unreachable | line1-plcs (modbus) | s1/a1/l1/capper/plc3 | 10.0.0.7:502 | no | - |" in md
    assert "## Not assessable" in md and "| line1-mqtt | sparkplug | connector type 'sparkplug' has no probe |" in md
    assert "## labeler (opcua): s1/a1/l1/labeler/srv" in md and "security mode None" in md
    assert "- **expected load:** 150% of the safe rate (OVER BUDGET)" in md
    assert "illegal data address \\| <script>" in md  # a pipe in a detail does not break the table
    for line in md.splitlines():  # every table row has as many cells as its header
        if line.startswith("| "):
            assert len(re.split(r"(?<!\\)\|", line)) - 2 in (4, 3, 10), line


def test_html_report_is_well_formed_and_self_contained():
    page = render_html(hand_built())
    assert page.startswith("<!DOCTYPE html>")
    root = ET.fromstring(page.split("\n", 1)[1])  # the markup is XML-clean: it parses without an HTML parser
    assert root.tag == "html"
    assert root.find("head/meta").get("charset") == "utf-8"
    assert not re.search(r"<(script|link|img|iframe)\b", page) and "src=" not in page and "href=" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    text = "".join(root.itertext())
    assert "FAIL: 1 compatible, 2 needs attention, 1 unreachable, 1 not assessable" in text
    tables = root.findall(".//table")
    assert len(tables) == 2 + 3  # summary, not assessable, and an item table for each link with items
    summary = tables[0]
    assert [th.text for th in summary.findall("thead/tr/th")][:3] == ["status", "connector", "link"]
    first = ["".join(td.itertext()) for td in summary.findall("tbody/tr")[0]]
    assert first[:3] == ["compatible", "line1-plcs (modbus)", "s1/a1/l1/filler/plc1"] and first[-1] == "10%"


class NoProbe(Connector):
    type = "noprobe"
    config_model = ConnectorConfig

    async def run(self) -> None:  # pragma: no cover - never started here
        pass


class BrokenProbe(NoProbe):
    type = "broken"

    @classmethod
    async def probe(cls, cfg, *, max_rps=50.0, duration_s=5.0):
        raise RuntimeError("driver exploded")


def test_runner_lists_connectors_without_probe_and_contains_probe_failures():
    pairs = [(NoProbe, ConnectorConfig(type="noprobe", name="a")), (BrokenProbe, ConnectorConfig(type="broken", name="b"))]
    links, skipped = asyncio.run(probe_all(pairs, max_rps=10, duration_s=0.1))
    assert skipped == [Skipped("a", "noprobe", "connector type 'noprobe' has no probe: check it by hand before connecting")]
    (la,) = links
    assert la.status == ATTENTION and la.blocking and la.connector == "b"
    assert la.findings == ["the probe failed: RuntimeError: driver exploded"]


# -- the command ------------------------------------------------------------------------------------------------------
def _replay(name: str, file, device: str) -> dict:
    return {"type": "replay", "name": name, "file": str(file), "device": device, "delimiter": ";",
            "timestamp_column": "datetime", "points": {"Current": "current", "Pressure": "pressure"}}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connecting is refused


def _write(tmp_path: Path, connectors: list) -> Path:
    f = tmp_path / "plant.yaml"
    f.write_text(yaml.safe_dump({"connectors": connectors}), encoding="utf-8")
    return f


def test_cli_reachable_passes(tmp_path):
    cfg = _write(tmp_path, [_replay("pump-rec", FIXTURE, "s1/a1/l1/pump1/rig1")])
    res = CliRunner().invoke(app, ["assess", "--config", str(cfg), "--out", str(tmp_path / "out" / "report"), "--duration", "1"])
    assert res.exit_code == 0, res.output
    assert "compatible       pump-rec s1/a1/l1/pump1/rig1" in res.stdout and "PASS: 1 compatible" in res.stdout
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**PASS: 1 compatible**" in md and "| compatible | pump-rec (replay) |" in md
    ET.fromstring((tmp_path / "out" / "report.html").read_text().split("\n", 1)[1])


def test_cli_unreachable_modbus_fails(tmp_path):
    modbus = {"type": "modbus", "name": "plc", "transport": {"kind": "tcp", "host": "127.0.0.1", "port": _closed_port()},
              "devices": [{"device": "s1/a1/l1/pump1/plc1", "poll": "1s", "points": [{"id": "speed", "address": 0}]}]}
    cfg = _write(tmp_path, [_replay("pump-rec", FIXTURE, "s1/a1/l1/pump1/rig1"), modbus])
    res = CliRunner().invoke(app, ["assess", "-c", str(cfg), "--out", str(tmp_path / "r.md"), "--format", "md",
                                   "--duration", "1", "--max-rps", "5"])
    assert res.exit_code == 1, res.output
    assert "unreachable      plc s1/a1/l1/pump1/plc1 (127.0.0.1:" in res.stdout
    assert "FAIL: 1 compatible, 1 unreachable" in res.stdout
    md = (tmp_path / "r.md").read_text()
    assert "| unreachable | plc (modbus) | s1/a1/l1/pump1/plc1 |" in md
    assert not (tmp_path / "r.html").exists()


def test_cli_missing_file_is_unreachable_and_bad_config_is_a_usage_error(tmp_path):
    cfg = _write(tmp_path, [_replay("gone", tmp_path / "nope.csv", "s1/a1/l1/pump1/rig1")])
    res = CliRunner().invoke(app, ["assess", "-c", str(cfg), "--out", str(tmp_path / "r"), "--format", "html", "--duration", "1"])
    assert res.exit_code == 1 and "unreachable" in res.stdout and (tmp_path / "r.html").exists()
    bad = _write(tmp_path, [{"type": "replay", "name": "x", "device": "nope"}])
    res = CliRunner().invoke(app, ["assess", "-c", str(bad)])
    assert res.exit_code == 2
    assert "connectors[0].file" in res.stderr and "connectors[0].device" in res.stderr
    empty = _write(tmp_path, [])
    empty.write_text("sites: []\n")
    res = CliRunner().invoke(app, ["assess", "-c", str(empty)])
    assert res.exit_code == 2 and "no connectors to assess" in res.stderr

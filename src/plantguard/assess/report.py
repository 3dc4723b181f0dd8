"""The assessment report as Markdown and as one self-contained HTML page (inline style, no scripts, no external
assets, so it can be mailed to a plant owner or opened on an offline engineering laptop)."""

from __future__ import annotations

from html import escape

from plantguard.assess.runner import ATTENTION, COMPATIBLE, NOT_ASSESSABLE, STATUSES, UNREACHABLE, Assessment, LinkAssessment
from plantguard.timeutil import iso

_COLORS = {COMPATIBLE: "#1b7f3b", ATTENTION: "#b26a00", UNREACHABLE: "#b3261e", NOT_ASSESSABLE: "#5f6368"}


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def _rps(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def _load(la: LinkAssessment) -> str:
    if la.load_pct is None:
        return "-"
    return "<1%" if 0 < la.load_pct < 1 else f"{la.load_pct:.0f}%"


def _name(la: LinkAssessment) -> str:
    """Instance name and type when the runner knows them (probes may put either in ProbeResult.connector)."""
    if la.connector:
        return f"{la.connector} ({la.type})" if la.type else la.connector
    return la.result.connector


def _items_ok(la: LinkAssessment) -> str:
    items = la.result.items
    return f"{sum(i.ok for i in items)}/{len(items)}" if items else "-"


def _verdict(a: Assessment) -> str:
    c = a.counts()
    parts = ", ".join(f"{c[s]} {s}" for s in STATUSES if c[s])
    return f"{'PASS' if a.ok else 'FAIL'}: {parts or 'nothing to assess'}"


def _header_facts(a: Assessment) -> list[tuple[str, str]]:
    return [("configuration", a.source or "-"), ("generated", iso(a.generated_at)),
            ("probe limits", f"at most {a.max_rps:g} requests/s per device, {a.duration_s:g} s of measuring per device"),
            ("writes to devices", "none: every probe only reads")]


def _summary_rows(a: Assessment) -> list[list[str]]:
    rows = []
    for la in a.links:
        r = la.result
        rows.append([la.status, _name(la), r.link, r.endpoint, "yes" if r.reachable else "no", _items_ok(la),
                     f"{_num(r.latency_ms_p50)} / {_num(r.latency_ms_p95)}", _rps(r.safe_poll_rps), _rps(r.planned_rps), _load(la)])
    return rows


SUMMARY_COLUMNS = ["status", "connector", "link", "endpoint", "reachable", "items ok", "latency p50 / p95 ms",
                   "safe req/s", "planned req/s", "expected load"]
ITEM_COLUMNS = ["item", "result", "latency ms", "detail"]


def _link_facts(la: LinkAssessment) -> list[tuple[str, str]]:
    r = la.result
    budget = {True: "within budget", False: "OVER BUDGET", None: "not judged"}[la.within_budget]
    return [
        ("status", la.status),
        ("endpoint", r.endpoint),
        ("reachable", ("yes" if r.reachable else "no") + (f", connected in {r.connect_ms:.1f} ms" if r.connect_ms is not None else "")),
        ("latency", f"p50 {_num(r.latency_ms_p50)} ms, p95 {_num(r.latency_ms_p95)} ms"),
        ("poll rate", f"planned {_rps(r.planned_rps)} requests/s, safe {_rps(r.safe_poll_rps)} requests/s"),
        ("expected load", f"{_load(la)} of the safe rate ({budget})" if la.load_pct is not None else f"- ({budget})"),
    ]


# -- Markdown ---------------------------------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(a: Assessment) -> str:
    out = ["# plantguard assessment", ""]
    out += [f"- **{k}:** {v}" for k, v in _header_facts(a)]
    out += ["", f"**{_verdict(a)}**", "", "## Summary", ""]
    out += _md_table(SUMMARY_COLUMNS, _summary_rows(a)) if a.links else ["No device link was probed."]
    if a.skipped:
        out += ["", "## Not assessable", ""]
        out += _md_table(["connector", "type", "reason"], [[s.connector, s.type, s.reason] for s in a.skipped])
    for la in a.links:
        r = la.result
        out += ["", f"## {_md_cell(_name(la))}: {_md_cell(r.link)}", ""]
        out += [f"- **{k}:** {_md_cell(v)}" for k, v in _link_facts(la)]
        for title, lines in (("Findings", la.findings), ("Risks", r.risks), ("Notes", r.notes)):
            if lines:
                out += ["", f"### {title}", ""] + [f"- {_md_cell(x)}" for x in lines]
        if r.items:
            out += ["", "### Items", ""]
            out += _md_table(ITEM_COLUMNS, [[i.target, "ok" if i.ok else "FAILED", _num(i.latency_ms), i.detail] for i in r.items])
    return "\n".join(out) + "\n"


# -- HTML -------------------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#202124}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #dadce0;padding-bottom:.25rem}
h3{font-size:1rem;margin-bottom:.25rem}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #dadce0;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f1f3f4}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.7rem;color:#fff;font-size:.8rem;white-space:nowrap}
.verdict{font-size:1.1rem;font-weight:700}.fail{color:#b3261e}.pass{color:#1b7f3b}
"""


def _e(x) -> str:
    return escape(str(x), quote=True)


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{_COLORS.get(status, "#5f6368")}">{_e(status)}</span>'


def _html_table(columns: list[str], rows: list[list[str]], raw_first: bool = False) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw_first and j == 0 else _e(c)}</td>" for j, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _dl(facts: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>"


def _ul(lines: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>"


def render_html(a: Assessment) -> str:
    parts = [f'<h1>plantguard assessment</h1>{_dl(_header_facts(a))}',
             f'<p class="verdict {"pass" if a.ok else "fail"}">{_e(_verdict(a))}</p>', "<h2>Summary</h2>"]
    if a.links:
        rows = _summary_rows(a)
        for row in rows:
            row[0] = _badge(row[0])
        parts.append(_html_table(SUMMARY_COLUMNS, rows, raw_first=True))
    else:
        parts.append("<p>No device link was probed.</p>")
    if a.skipped:
        parts.append("<h2>Not assessable</h2>")
        parts.append(_html_table(["connector", "type", "reason"], [[s.connector, s.type, s.reason] for s in a.skipped]))
    for la in a.links:
        r = la.result
        parts.append(f"<section><h2>{_e(_name(la))}: {_e(r.link)} {_badge(la.status)}</h2>{_dl(_link_facts(la))}")
        for title, lines in (("Findings", la.findings), ("Risks", r.risks), ("Notes", r.notes)):
            if lines:
                parts.append(f"<h3>{title}</h3>{_ul(lines)}")
        if r.items:
            rows = [[i.target, "ok" if i.ok else "FAILED", _num(i.latency_ms), i.detail] for i in r.items]
            parts.append(f"<h3>Items</h3>{_html_table(ITEM_COLUMNS, rows)}")
        parts.append("</section>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8" /><meta name="viewport" '
            'content="width=device-width, initial-scale=1" /><title>plantguard assessment</title>'
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")

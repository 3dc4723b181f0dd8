"""The assessment report: one self-contained HTML file (inline CSS and SVG charts, no external request) and a
PDF of the same content (fpdf2: pure Python, installs from the registry without system libraries).

    html(assessment, history)  -> str      pdf(assessment, history) -> bytes
"""

from __future__ import annotations

import html as _h
from datetime import datetime, timezone

from plantguard.maturity.model import AREAS, LEVEL_NAMES

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#1d2733;max-width:1100px}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccd}
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border:1px solid #dde;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f2f4f8}.met{color:#16794a}.not_met{color:#b3261e}.missing{color:#8a6d00}.small{font-size:.85em;color:#556}
.chip{display:inline-block;padding:1px 6px;border-radius:8px;background:#eef;margin-right:4px}"""


def _t(us: int | None) -> str:
    if us is None:
        return ""
    return datetime.fromtimestamp(us / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _e(s) -> str:
    return _h.escape("" if s is None else str(s))


def _bars(levels: dict) -> str:
    """Current level (bar) against target (tick) per practice area."""
    rows = list(levels.values())
    w, row_h, left = 640, 26, 190
    scale = (w - left - 20) / 5
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{row_h * len(rows) + 30}" role="img" aria-label="levels against targets">']
    for k in range(6):
        x = left + k * scale
        out.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{row_h * len(rows)}" stroke="#e3e6ee"/>'
                   f'<text x="{x}" y="{row_h * len(rows) + 16}" font-size="11" text-anchor="middle">{k}</text>')
    for i, r in enumerate(rows):
        y = i * row_h
        out.append(f'<text x="{left - 8}" y="{y + 17}" font-size="12" text-anchor="end">{_e(r["name"])}</text>')
        out.append(f'<rect x="{left}" y="{y + 5}" width="{r["level"] * scale}" height="{row_h - 10}" fill="#3b6fd8"/>')
        if r.get("target"):
            x = left + r["target"] * scale
            out.append(f'<line x1="{x}" y1="{y + 2}" x2="{x}" y2="{y + row_h - 2}" stroke="#d33" stroke-width="3"/>')
    out.append("</svg>")
    return "".join(out)


def _trend(history: list[dict]) -> str:
    """Mean level per stored assessment, oldest first, one polyline per practice area."""
    if len(history) < 2:
        return '<p class="small">One assessment so far: the trend appears with the next stored one.</p>'
    w, hgt, pad = 640, 180, 30
    n = len(history)
    colors = ("#3b6fd8", "#d8843b", "#2f9e5b", "#b3261e", "#7a4fd0", "#1b9aaa", "#8a6d00", "#555")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{hgt + 40}" role="img" aria-label="levels over time">']
    for lv in range(1, 6):
        y = hgt - (lv - 1) / 4 * (hgt - pad) - 10
        out.append(f'<line x1="{pad}" y1="{y}" x2="{w - 10}" y2="{y}" stroke="#eee"/><text x="5" y="{y + 4}" font-size="10">{lv}</text>')
    for c, area in enumerate(AREAS):
        pts = []
        for i, a in enumerate(history):
            lv = a["levels"].get(area.id)
            if lv is None:
                continue
            x = pad + i * (w - pad - 20) / max(n - 1, 1)
            y = hgt - (lv - 1) / 4 * (hgt - pad) - 10
            pts.append(f"{x:.1f},{y:.1f}")
        if pts:
            out.append(f'<polyline fill="none" stroke="{colors[c % len(colors)]}" stroke-width="2" points="{" ".join(pts)}"/>')
        out.append(f'<text x="{pad + c * 78}" y="{hgt + 30}" font-size="10" fill="{colors[c % len(colors)]}">{_e(area.id)}</text>')
    out.append("</svg>")
    return "".join(out)


def html(a: dict, history: list[dict]) -> str:
    lv = a["levels"]
    ev = {e["id"]: e for e in a["evidence"]}
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>plantguard maturity assessment</title><style>{_CSS}</style></head><body>",
             f"<h1>Maturity assessment{' — ' + _e(a.get('site')) if a.get('site') else ''}</h1>",
             f"<p class=small>Assessed {_t(a['at'])}{' by ' + _e(a.get('actor')) if a.get('actor') else ''}; evidence over the "
             f"{a['period_s'] / 86400:g} days before. Mean level {a['summary']['mean_level']}, total gap to target "
             f"{a['summary']['gaps']}, {a['summary']['missing_evidence']} evidence items missing (missing is never counted as met).</p>",
             "<h2>Levels against target</h2>", _bars(lv), "<h2>Trend across assessments</h2>", _trend(history),
             "<h2>Practice areas</h2>"]
    for area in lv.values():
        target = f", target {area['target']}" if area.get("target") else ""
        parts.append(f"<h3 id='area-{_e(area['area'])}'>{_e(area['name'])}: level {area['level']} ({_e(area['level_name'])}){target}</h3>")
        parts.append("<table><tr><th>Level</th><th>Indicator</th><th>Status</th><th>Evidence</th></tr>")
        for i in area["indicators"]:
            if i.get("evidence"):
                e = ev.get(i["evidence"]) or {}
                val = f"{e.get('value')} {e.get('unit', '')} ({i.get('threshold')})" if e.get("status") == "measured" else _e(e.get("reason") or "not measured")
                link = f"<a href='#ev-{_e(i['evidence'])}'>{_e(i['evidence'])}</a>: {val}"
            else:
                at = i.get("attestation") or {}
                link = (f"attested by {_e(at.get('signer'))} until {_t(at.get('expires_at'))}" if at else "no attestation")
            parts.append(f"<tr><td>{i['level']}</td><td>{_e(i['text'])}</td><td class='{_e(i['status'])}'>{_e(i['status'].replace('_', ' '))}</td><td>{link}</td></tr>")
        parts.append("</table>")
        if area["next_actions"]:
            parts.append("<p><b>To reach the next level:</b></p><ul>" + "".join(f"<li>{_e(x)}</li>" for x in area["next_actions"]) + "</ul>")
    parts.append("<h2>Evidence</h2><table><tr><th>Item</th><th>Value</th><th>Scope</th><th>Period</th><th>Measured</th></tr>")
    for e in a["evidence"]:
        val = f"{e['value']} {_e(e['unit'])}" if e["status"] == "measured" else f"<span class=missing>missing: {_e(e.get('reason'))}</span>"
        parts.append(f"<tr id='ev-{_e(e['id'])}'><td><b>{_e(e['id'])}</b><br><span class=small>{_e(e['title'])}</span></td><td>{val}</td>"
                     f"<td>{_e(e['scope'])}</td><td class=small>{_t(e['start'])} – {_t(e['end'])}</td><td class=small>{_t(e['measured_at'])}</td></tr>")
    parts.append("</table><p class=small>Levels: " + ", ".join(f"{k} {v}" for k, v in LEVEL_NAMES.items()) +
                 ". The model's areas map to CMMI V2.0 practice areas and IIC SMM practices (docs/maturity.md).</p></body></html>")
    return "".join(parts)


def pdf(a: dict, history: list[dict]) -> bytes:
    from fpdf import FPDF

    def t(s) -> str:  # the core fonts are Latin-1
        return str("" if s is None else s).replace("\u2014", "-").replace("\u2013", "-").encode("latin-1", "replace").decode("latin-1")

    doc = FPDF(format="A4")
    doc.set_auto_page_break(True, margin=15)
    doc.add_page()
    doc.set_font("Helvetica", "B", 16)
    doc.cell(0, 10, t(f"Maturity assessment{' - ' + a['site'] if a.get('site') else ''}"), new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", "", 9)
    doc.multi_cell(0, 5, t(f"Assessed {_t(a['at'])}; evidence over the {a['period_s'] / 86400:g} days before. Mean level "
                           f"{a['summary']['mean_level']}, gap to target {a['summary']['gaps']}, "
                           f"{a['summary']['missing_evidence']} evidence items missing."), new_x="LMARGIN", new_y="NEXT")
    doc.ln(3)
    doc.set_font("Helvetica", "B", 12)
    doc.cell(0, 8, "Levels against target", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", "", 9)
    x0, scale = 60, 24
    for area in a["levels"].values():
        y = doc.get_y()
        doc.set_xy(10, y)
        doc.cell(48, 6, t(area["name"]))
        doc.set_fill_color(59, 111, 216)
        doc.rect(x0, y + 1, max(area["level"] * scale, 0.5), 4, style="F")
        if area.get("target"):
            doc.set_draw_color(211, 51, 51)
            doc.set_line_width(0.8)
            doc.line(x0 + area["target"] * scale, y, x0 + area["target"] * scale, y + 6)
            doc.set_line_width(0.2)
        doc.set_xy(x0 + 5 * scale + 4, y)
        doc.cell(30, 6, t(f"{area['level']} / {area.get('target') or '-'}"), new_x="LMARGIN", new_y="NEXT")
    if len(history) >= 2:
        doc.ln(3)
        doc.set_font("Helvetica", "B", 12)
        doc.cell(0, 8, "Trend (mean level per stored assessment)", new_x="LMARGIN", new_y="NEXT")
        y0 = doc.get_y() + 30
        pts = [(sum(h["levels"].values()) / max(len(h["levels"]), 1)) for h in history]
        doc.set_draw_color(59, 111, 216)
        for i in range(1, len(pts)):
            xa, xb = 15 + (i - 1) * 170 / (len(pts) - 1), 15 + i * 170 / (len(pts) - 1)
            doc.line(xa, y0 - pts[i - 1] * 5, xb, y0 - pts[i] * 5)
        doc.set_y(y0 + 4)
    for area in a["levels"].values():
        doc.ln(2)
        doc.set_font("Helvetica", "B", 11)
        doc.cell(0, 7, t(f"{area['name']}: level {area['level']} ({area['level_name']})"), new_x="LMARGIN", new_y="NEXT")
        doc.set_font("Helvetica", "", 8)
        for i in area["indicators"]:
            doc.multi_cell(0, 4.5, t(f"  L{i['level']} [{i['status'].replace('_', ' ')}] {i['text']}"
                                     + (f" - {i['evidence']}: {i.get('value')}" if i.get("evidence") else "")),
                           new_x="LMARGIN", new_y="NEXT")
        for x in area["next_actions"]:
            doc.multi_cell(0, 4.5, t(f"  next: {x}"), new_x="LMARGIN", new_y="NEXT")
    doc.add_page()
    doc.set_font("Helvetica", "B", 12)
    doc.cell(0, 8, "Evidence", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", "", 8)
    for e in a["evidence"]:
        val = f"{e['value']} {e['unit']}" if e["status"] == "measured" else f"missing: {e.get('reason')}"
        doc.multi_cell(0, 4.5, t(f"{e['id']} ({e['scope']}): {val}; {_t(e['start'])} - {_t(e['end'])}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(doc.output())

// Alarms page: operator actions (acknowledge, shelve, unshelve) through the API, and rows kept current from the
// live stream (pg:alarms events from live.js). Rows carry data-alarm-id, data-state and data-priority.
(function () {
  "use strict";
  const ctx = JSON.parse(document.getElementById("pg-alarm-context").textContent);
  const table = document.querySelector("[data-alarm-table] tbody");
  const flash = document.querySelector("[data-flash]");
  const dialog = document.querySelector("[data-shelve-dialog]");
  const RANK = { urgent: 3, high: 2, medium: 1, low: 0 };
  const CAN_OPERATE = document.body.dataset.canOperate === "1";
  let shelveTarget = null;
  let returnFocus = null;


  function say(text, isError) {
    flash.textContent = text;
    flash.classList.toggle("error", !!isError);
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => { if (v !== undefined && v !== null) e.setAttribute(k, v); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function localTime(iso, tag) {
    const tz = ctx.zones[(tag || "").split("/")[0]] || document.body.dataset.tz;
    if (!iso) return "—";
    const fmt = new Intl.DateTimeFormat(undefined, {
      timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hour12: false, timeZoneName: "short",
    });
    return fmt.format(new Date(iso));
  }

  function matches(a) {
    const f = ctx.filters;
    if (!f.state && a.state === "normal") return false;
    if (f.state && f.state !== "all" && a.state !== f.state) return false;
    if (f.priority && a.priority !== f.priority) return false;
    if (f.active && String(a.active) !== f.active) return false;
    if (f.prefix && !a.tag.startsWith(f.prefix)) return false;
    return true;
  }

  // Mirrors the server-rendered row in alarms.html.
  function row(a) {
    const unit = ctx.units[a.tag] || "";
    const tr = el("tr", { "data-alarm-id": a.id, "data-state": a.state, "data-priority": a.priority,
      "data-active": String(a.active), "data-tag": a.tag, "data-raised": a.raised_at || "" });
    const p = el("td"); p.append(el("span", { class: "prio prio-" + a.priority }, a.priority)); tr.append(p);
    const s = el("td");
    s.append(el("span", { class: "state state-" + a.state, "data-state-text": "" }, ctx.states[a.state] || a.state));
    if (a.state === "shelved") {
      s.append(el("br"), el("span", { class: "muted" }, "by " + a.shelved_by + " until " + localTime(a.shelved_until, a.tag)
        + (a.shelve_reason ? ": " + a.shelve_reason : "")));
    } else if (a.acked_by) {
      s.append(el("br"), el("span", { class: "muted" }, "acknowledged by " + a.acked_by));
    }
    tr.append(s);
    const m = el("td");
    m.append(el("span", { class: "cond" }, a.condition), " ", el("span", { class: "tag" }, a.tag), el("br"),
      el("span", { class: "msg" }, a.message));
    tr.append(m);
    const v = el("td", { class: "num", "data-value": "" }, window.pgLive.formatValue(a.value, unit));
    if (a.limit !== null && a.limit !== undefined) v.append(el("br"), el("span", { class: "muted" }, "limit " + window.pgLive.formatValue(a.limit, unit)));
    tr.append(v);
    const t = el("td"); t.append(el("time", { datetime: a.raised_at || "", "data-ts-iso": a.raised_at || "" }, localTime(a.raised_at, a.tag))); tr.append(t);
    const act = el("td", { class: "actions" });
    if (CAN_OPERATE && (a.state === "unacknowledged" || a.state === "returned_to_normal")) act.append(el("button", { type: "button", "data-action": "ack" }, "Acknowledge"));
    if (CAN_OPERATE && a.state !== "shelved") act.append(el("button", { type: "button", "data-action": "shelve" }, "Shelve…"));
    if (CAN_OPERATE && a.state === "shelved") act.append(el("button", { type: "button", "data-action": "unshelve" }, "Unshelve"));
    tr.append(act);
    return tr;
  }

  function order(a, b) {
    const pa = RANK[a.dataset.priority] || 0, pb = RANK[b.dataset.priority] || 0;
    if (pa !== pb) return pb - pa;
    return (b.dataset.raised || "").localeCompare(a.dataset.raised || "");
  }

  function findRow(id) {
    return Array.from(table.rows).find((r) => r.dataset.alarmId === id) || null;
  }

  function upsert(a) {
    const old = findRow(a.id);
    if (!matches(a)) {
      if (old) old.remove();
      return;
    }
    const fresh = row(a);
    const hadFocus = old && old.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    if (old) {
      if (!fresh.dataset.raised && old.dataset.raised) fresh.dataset.raised = old.dataset.raised;
      old.replaceWith(fresh);
    } else {
      fresh.classList.add("new-row");
      table.append(fresh);
    }
    if (hadFocus) {
      const b = fresh.querySelector("button[data-action='" + hadFocus + "']") || fresh.querySelector("button");
      if (b) b.focus();
    }
  }

  function resort() {
    Array.from(table.rows).forEach((r) => { if (!r.dataset.raised) r.dataset.raised = (r.querySelector("time") || {}).dateTime || ""; });
    const rows = Array.from(table.rows).sort(order);
    // Re-appending moves rows; skip when the order is unchanged so that focus is not disturbed.
    if (rows.some((r, i) => table.rows[i] !== r)) rows.forEach((r) => table.append(r));
    document.querySelector("[data-alarm-count]").textContent = String(table.rows.length);
    document.querySelector("[data-no-alarms]").hidden = table.rows.length > 0;
  }

  document.addEventListener("pg:alarms", (e) => {
    (e.detail.data || []).forEach(upsert);
    resort();
  });


  async function post(id, action, payload) {
    const r = await fetch("/api/alarms/" + id.split("/").map(encodeURIComponent).join("/") + "/" + action, {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": window.pgLive.csrf() }, body: JSON.stringify(payload),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.detail || body.message || ("HTTP " + r.status));
    return body;
  }

  async function act(tr, action, extra) {
    const id = tr.dataset.alarmId;
    try {
      const rec = await post(id, action, { ...(extra || {}) });
      upsert(rec);
      resort();
      const verbs = { ack: "Acknowledged", shelve: "Shelved", unshelve: "Unshelved" };
      say(verbs[action] + ": " + id);
    } catch (err) {
      say("Could not " + (action === "ack" ? "acknowledge" : action) + " " + id + ": " + err.message, true);
    }
  }

  table.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    const tr = b.closest("tr");
    if (b.dataset.action === "shelve") {
      shelveTarget = tr;
      returnFocus = b;
      dialog.querySelector("[data-shelve-target]").textContent = tr.dataset.alarmId;
      dialog.querySelector("[data-shelve-reason]").value = "";
      dialog.showModal();
      dialog.querySelector("[data-shelve-reason]").focus();
    } else {
      act(tr, b.dataset.action);
    }
  });

  dialog.querySelector("[data-shelve-form]").addEventListener("submit", (e) => {
    e.preventDefault();
    const reason = dialog.querySelector("[data-shelve-reason]").value.trim();
    if (!reason) { dialog.querySelector("[data-shelve-reason]").focus(); return; }
    const duration = dialog.querySelector("[data-shelve-duration]").value;
    dialog.close();
    if (shelveTarget) act(shelveTarget, "shelve", { duration, reason });
  });
  dialog.querySelector("[data-shelve-cancel]").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => { if (returnFocus && document.contains(returnFocus)) returnFocus.focus(); });
})();

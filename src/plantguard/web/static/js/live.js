// Live updates for every dashboard page, from the Server-Sent Events stream at /api/stream.
//
// Contract with the page scripts (docs/web.md):
// - document.body.dataset.sseState is "connecting", "open" or "closed";
// - elements with data-live-point="<tag>" show that point's newest value (unit from data-unit), elements with
//   data-live-ts="<tag>" its time; data-health="<field>" shows a field of the health event;
// - CustomEvents pg:latest, pg:alarms and pg:health are dispatched on document (detail = the event's data);
// - window.pgLive.addPoints(tags) subscribes to more points (the stream is reopened);
// - elements with an id and data-refresh="<seconds>" are re-read from the same page that often (and at once
//   after an alarm change when data-refresh-on="alarms"), unless the keyboard focus is inside them.
(function () {
  "use strict";
  const body = document.body;
  const tz = body.dataset.tz || "UTC";
  const UNITS = { degC: "°C", degF: "°F", "m3/h": "m³/h", m3: "m³" };
  const points = new Set();
  let source = null;
  let since = body.dataset.since || "";

  const timeFmt = new Intl.DateTimeFormat(undefined, {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short",
  });
  const clockFmt = new Intl.DateTimeFormat(undefined, {
    timeZone: tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function unitSymbol(u) { return UNITS[u] || u || ""; }

  function formatNumber(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "—";
    if (typeof v !== "number") return String(v);
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US").replace(/,/g, " ");
    return String(Number(v.toFixed(3)));
  }

  function formatValue(v, unit) {
    if (v === null || v === undefined) return "—";
    const u = unitSymbol(unit);
    return u ? formatNumber(v) + " " + u : formatNumber(v);
  }

  // ms: epoch milliseconds, or an ISO string
  function formatTime(ms, clockOnly) {
    if (ms === null || ms === undefined || ms === "") return "—";
    const d = new Date(ms);
    if (Number.isNaN(d.getTime())) return "—";
    return (clockOnly ? clockFmt : timeFmt).format(d);
  }

  function setState(state) {
    body.dataset.sseState = state;
    const text = document.querySelector("[data-sse-text]");
    if (text) {
      text.textContent = state === "open" ? "Live" : state === "connecting" ? "Live: connecting" : "Live: disconnected, retrying";
    }
  }

  function collectPoints() {
    document.querySelectorAll("[data-live-point]").forEach((el) => points.add(el.dataset.livePoint));
    document.querySelectorAll("[data-live-ts]").forEach((el) => points.add(el.dataset.liveTs));
    (body.dataset.livePoints || "").split(",").forEach((t) => { if (t.trim()) points.add(t.trim()); });
  }

  function onLatest(data) {
    const values = data.values || {};
    document.querySelectorAll("[data-live-point]").forEach((el) => {
      const v = values[el.dataset.livePoint];
      if (!v) return;
      el.textContent = formatValue(v.value, el.dataset.unit);
      el.classList.toggle("bad-quality", v.quality !== 0);
    });
    document.querySelectorAll("[data-live-ts]").forEach((el) => {
      const v = values[el.dataset.liveTs];
      if (v) el.textContent = formatTime(v.ts);
    });
  }

  function onHealth(data) {
    document.querySelectorAll("[data-health]").forEach((el) => {
      const k = el.dataset.health;
      if (!(k in data)) return;
      const v = data[k];
      if (k === "writer_alive") el.textContent = v ? "alive" : "stopped";
      else if (k === "status") { el.textContent = v; el.className = "badge badge-" + v; }
      else if (v === null) el.textContent = "—";
      else if (k === "readings_per_s") el.textContent = formatNumber(Math.round(v * 10) / 10);
      else if (el.dataset.noun) el.textContent = formatNumber(v) + " " + el.dataset.noun + (v === 1 ? "" : "s");
      else el.textContent = formatNumber(v);
    });
  }

  function dispatch(name, data) {
    document.dispatchEvent(new CustomEvent(name, { detail: data }));
  }

  function connect() {
    if (source) source.close();
    const q = new URLSearchParams();
    if (points.size) q.set("points", Array.from(points).join(","));
    if (since) q.set("since", since);
    setState("connecting");
    source = new EventSource("/api/stream" + (q.toString() ? "?" + q : ""));
    source.onopen = () => setState("open");
    // EventSource reconnects by itself (after the server's retry delay); the state shows the gap meanwhile.
    source.onerror = () => setState(source.readyState === EventSource.CLOSED ? "closed" : "connecting");
    source.addEventListener("latest", (e) => { const d = JSON.parse(e.data); onLatest(d); dispatch("pg:latest", d); });
    source.addEventListener("alarms", (e) => {
      const d = JSON.parse(e.data);
      if (e.lastEventId) since = e.lastEventId;
      dispatch("pg:alarms", d);
      refresh(true);
    });
    source.addEventListener("health", (e) => { const d = JSON.parse(e.data); onHealth(d); dispatch("pg:health", d); });
    // A stream closed for good (e.g. an HTTP error) is retried here: EventSource gives up on those.
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    });
  }

  // -- partial refresh of server-rendered blocks ------------------------------------------------------------
  const lastRefresh = new Map();
  let refreshing = false;

  async function refresh(alarmChange) {
    const now = Date.now();
    const due = Array.from(document.querySelectorAll("[data-refresh][id]")).filter((el) => {
      if (el.contains(document.activeElement)) return false;
      if (alarmChange && el.dataset.refreshOn === "alarms") return true;
      const every = Number(el.dataset.refresh) * 1000;
      return !alarmChange && now - (lastRefresh.get(el.id) || now - every - 1) >= every;
    });
    if (!due.length || refreshing) return;
    refreshing = true;
    try {
      const r = await fetch(location.href, { headers: { Accept: "text/html" } });
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      due.forEach((el) => {
        const fresh = doc.getElementById(el.id);
        if (fresh && !el.contains(document.activeElement)) el.replaceWith(fresh);
        lastRefresh.set(el.id, now);
      });
    } catch (e) {
      // offline for a moment: the next tick tries again
    } finally {
      refreshing = false;
    }
  }

  window.pgLive = {
    formatValue, formatNumber, formatTime, unitSymbol, timeZone: tz,
    addPoints(tags) {
      const before = points.size;
      tags.forEach((t) => points.add(t));
      if (points.size !== before) connect();
    },
    reconnect: connect,
    // the session's CSRF token, sent with every state-changing request (X-CSRF-Token)
    csrf() {
      const m = document.querySelector("meta[name=csrf-token]");
      return m ? m.content : "";
    },
  };

  collectPoints();
  document.querySelectorAll("[data-refresh][id]").forEach((el) => lastRefresh.set(el.id, Date.now()));
  setInterval(() => refresh(false), 1000);
  connect();
})();

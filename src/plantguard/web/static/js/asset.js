/* Asset page: time-series charts of an asset's points, SPC, anomaly score, remaining useful life and KPIs.
 *
 * Charts are drawn with uPlot (static/vendor/uplot, see docs/web-charts.md). Every range change reloads all
 * charts from /api/telemetry/downsample (which picks the raw table or the 1m / 1h rollups by bucket width) and
 * the analytics endpoints; while the range ends at "now", readings from the live stream (the pg:latest event
 * of live.js) are appended and redraws are batched into one animation frame.
 *
 * Hooks for tests and tools: each chart element ([data-chart]) gets data-state="ready", data-render-ms (its
 * last fetch + render) and data-points (rows drawn); point charts also data-tier. <body> gets
 * data-charts-ready="1" once every chart of the current range is drawn ("0" while loading), data-charts-range
 * and data-charts-ms.
 */
(function () {
  "use strict";

  var dataEl = document.getElementById("asset-data");
  var root = document.getElementById("asset-page");
  if (!dataEl || !root || typeof window.uPlot !== "function") return;
  var uPlot = window.uPlot;
  var asset = JSON.parse(dataEl.textContent);
  var TZ = validZone(asset.timezone || document.body.dataset.tz || "UTC");
  var API = "/api";
  var RANGES = { "15m": 15 * 60e3, "1h": 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
  var MIN_BUCKETS = 500, MAX_BUCKETS = 1000;
  var MAX_RAW_SPC = 4000;           // SPC charts show the individual values up to this many readings, bucket means beyond
  var MAX_LIVE_ROWS = 4000;          // at most this many rows kept per chart while live readings are appended
  var ANOMALY_THRESHOLD = typeof asset.anomaly_threshold === "number" ? asset.anomaly_threshold : 0.9;
  var DPR = window.devicePixelRatio || 1;
  var COLORS = ["#1f6fd1", "#c2410c", "#15803d", "#7e22ce", "#0e7490", "#a16207", "#be185d", "#4d7c0f"];

  var state = { label: "1h", span: RANGES["1h"], start: null, end: null, live: true, gen: 0, abort: null };
  var charts = [];
  var pointCharts = {};             // tag -> chart
  var byEl = new Map();

  // ---------------------------------------------------------------- formatting

  function validZone(z) {
    try { new Intl.DateTimeFormat("en-GB", { timeZone: z }); return z; } catch (e) { return "UTC"; }
  }

  var partsFmt = new Intl.DateTimeFormat("en-GB", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23"
  });
  var monthFmt = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, month: "short" });

  function parts(ms) {
    var o = {};
    partsFmt.formatToParts(new Date(ms)).forEach(function (p) { o[p.type] = p.value; });
    if (o.hour === "24") o.hour = "00";
    return o;
  }
  function fmtTime(ms) {
    if (ms == null || !isFinite(ms)) return "—";
    var p = parts(ms);
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" + p.second;
  }
  function fmtShort(ms) {
    var p = parts(ms);
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  }
  function timeTicks(u, splits, axisIdx, space, incr) {
    var prevDay = null;
    return splits.map(function (ts, i) {
      if (ts == null) return "";
      var p = parts(ts), day = p.year + p.month + p.day, out;
      if (incr >= 86400e3) {
        out = p.day + " " + monthFmt.format(new Date(ts));
        if (i === 0) out += "\n" + p.year;
      } else {
        out = p.hour + ":" + p.minute + (incr < 60e3 ? ":" + p.second : "");
        if (i === 0 || day !== prevDay) out += "\n" + p.day + " " + monthFmt.format(new Date(ts));
      }
      prevDay = day;
      return out;
    });
  }
  var UNIT_LABELS = { degC: "°C", degF: "°F", "m3/h": "m³/h", m3: "m³", pct: "%", percent: "%" };
  function unitLabel(u) { return u ? (UNIT_LABELS[u] || u) : ""; }
  function fmtNum(v, digits) {
    if (v == null || typeof v !== "number" || !isFinite(v)) return "—";
    if (digits == null) {
      var a = Math.abs(v);
      digits = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 3 : 4;
    }
    return v.toFixed(digits);
  }
  function withUnit(v, unit, digits) {
    var s = fmtNum(v, digits);
    var u = unitLabel(unit);
    return s === "—" || !u ? s : s + " " + u;
  }
  function trimNum(v, unit) {
    var s = fmtNum(v);
    if (s.indexOf(".") >= 0) s = s.replace(/\.?0+$/, "");
    return unitLabel(unit) ? s + " " + unitLabel(unit) : s;
  }
  function fmtPct(v) { return v == null || !isFinite(v) ? "—" : (v * 100).toFixed(v >= 0.995 && v < 1 ? 2 : 1) + " %"; }
  function fmtDuration(s) {
    if (s == null || !isFinite(s)) return "—";
    if (s >= 2 * 86400) return (s / 86400).toFixed(1) + " d";
    if (s >= 3600) return (s / 3600).toFixed(1) + " h";
    if (s >= 60) return (s / 60).toFixed(1) + " min";
    return s.toFixed(0) + " s";
  }
  function fmtSpan(ms) {
    if (ms >= 86400e3) return (ms / 86400e3).toFixed(ms % 86400e3 ? 1 : 0) + " d";
    if (ms >= 3600e3) return (ms / 3600e3).toFixed(ms % 3600e3 ? 1 : 0) + " h";
    if (ms >= 60e3) return (ms / 60e3).toFixed(ms % 60e3 ? 1 : 0) + " min";
    return (ms / 1e3).toFixed(ms % 1e3 ? 1 : 0) + " s";
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function cssVar(name, fallback) {
    var v = getComputedStyle(root).getPropertyValue(name).trim();
    return v || fallback;
  }

  // ---------------------------------------------------------------- fetching

  function getJSON(path, params, signal) {
    var q = Object.keys(params).filter(function (k) { return params[k] != null; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]); }).join("&");
    return fetch(API + path + (q ? "?" + q : ""), { signal: signal, headers: { accept: "application/json" } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          return { ok: r.ok, status: r.status, body: body };
        });
      });
  }
  function rangeParams() {
    if (state.live) return { start: "now-" + Math.round(state.span / 1000), end: "now" };
    return { start: Math.floor(state.start), end: Math.ceil(state.end) };
  }
  function responseWindow(body) {
    var s = Date.parse(body.start), e = Date.parse(body.end);
    if (isFinite(s) && isFinite(e) && e > s) return [s, e];
    return state.live ? [Date.now() - state.span, Date.now()] : [state.start, state.end];
  }
  function bucketsFor(c) {
    var w = c.el.clientWidth || 800;
    return Math.max(MIN_BUCKETS, Math.min(MAX_BUCKETS, Math.round(w * DPR)));
  }

  // ---------------------------------------------------------------- drawing helpers

  function hline(u, v, color, dash, label, width) {
    if (v == null || !isFinite(v)) return;
    var ctx = u.ctx, b = u.bbox;
    var y = Math.round(u.valToPos(v, "y", true)) + 0.5;
    if (y < b.top - 1 || y > b.top + b.height + 1) return;
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = (width || 1) * DPR;
    ctx.setLineDash(dash ? dash.map(function (d) { return d * DPR; }) : []);
    ctx.beginPath();
    ctx.moveTo(b.left, y);
    ctx.lineTo(b.left + b.width, y);
    ctx.stroke();
    if (label) {
      ctx.setLineDash([]);
      ctx.font = (11 * DPR) + "px system-ui, sans-serif";
      ctx.textAlign = "right";
      ctx.textBaseline = "bottom";
      var tw = ctx.measureText(label).width;
      ctx.fillStyle = cssVar("--asset-chart-bg", "#ffffff");
      ctx.globalAlpha = 0.85;
      ctx.fillRect(b.left + b.width - tw - 6 * DPR, y - 14 * DPR, tw + 4 * DPR, 13 * DPR);
      ctx.globalAlpha = 1;
      ctx.fillStyle = color;
      ctx.fillText(label, b.left + b.width - 4 * DPR, y - 2 * DPR);
    }
    ctx.restore();
  }

  function yRange(extra, pad) {
    return function (u, dmin, dmax) {
      var lo = dmin, hi = dmax;
      var ex = (typeof extra === "function" ? extra() : extra) || [];
      if (lo == null || hi == null || !isFinite(lo) || !isFinite(hi)) {
        if (!ex.length) return [0, 1];
        lo = Math.min.apply(null, ex); hi = Math.max.apply(null, ex);
      }
      var span = Math.max(hi - lo, Math.abs(hi) * 0.02, 1e-6);
      ex.forEach(function (v) {
        if (v >= lo - span && v <= hi + span) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      });
      var p = (hi - lo || span) * (pad == null ? 0.08 : pad);
      return [lo - p, hi + p];
    };
  }

  function baseOpts(c, o) {
    var axis = cssVar("--asset-chart-axis", "#334155");
    var grid = cssVar("--asset-chart-grid", "rgba(100,116,139,0.22)");
    var unit = unitLabel(o.unit);
    return {
      width: Math.max(200, c.el.clientWidth || 600),
      height: o.height || 180,
      ms: 1,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts), TZ); },
      pxAlign: 0,
      scales: {
        x: { time: true, auto: false, range: function () { return [c.xMin, c.xMax]; } },
        y: o.yScale || { range: yRange(o.extra) }
      },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, values: timeTicks, size: 44, space: 70 },
        {
          stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 64,
          label: o.axisLabel != null ? o.axisLabel : unit, labelSize: 18, labelFont: "12px system-ui, sans-serif",
          values: o.yValues || function (u, vals) { return vals.map(function (v) { return fmtNum(v, decimalsFor(vals)); }); }
        }
      ],
      series: [{ label: "Time (" + TZ + ")", value: function (u, v) { return fmtTime(v); } }].concat(o.series),
      bands: o.bands,
      cursor: {
        sync: { key: "pg-asset", setSeries: false },
        drag: { x: true, y: false, setScale: false },
        points: { size: 6 }
      },
      legend: { live: true },
      hooks: {
        draw: o.draw ? [o.draw] : [],
        setSelect: [onSelect]
      }
    };
  }
  function decimalsFor(vals) {
    if (vals.length < 2) return 2;
    var step = Math.abs(vals[1] - vals[0]);
    if (!step) return 2;
    return Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  }

  function onSelect(u) {
    var sel = u.select;
    if (!sel || sel.width < 4) return;
    var a = u.posToVal(sel.left, "x"), b = u.posToVal(sel.left + sel.width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (b - a >= 1000) setRange({ start: a, end: b });
  }

  function joinTables(tables) {
    // tables: [[xs, ys], ...] with sorted xs -> [xs, ys1, ys2, ...] aligned on the union of xs
    var all = [];
    tables.forEach(function (t) { all = all.concat(t[0]); });
    all.sort(function (a, b) { return a - b; });
    var xs = [];
    for (var i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) xs.push(all[i]);
    var idx = new Map();
    xs.forEach(function (x, i) { idx.set(x, i); });
    var out = [xs];
    tables.forEach(function (t) {
      var ys = new Array(xs.length).fill(undefined);   // undefined: uPlot spans it (null would be a gap)
      for (var j = 0; j < t[0].length; j++) ys[idx.get(t[0][j])] = t[1][j];
      out.push(ys);
    });
    return out;
  }

  // ---------------------------------------------------------------- chart life cycle

  function setStatus(c, text) {
    var s = c.card && c.card.querySelector("[data-role=status]");
    if (s) { s.textContent = text || ""; s.hidden = !text; }
    c.el.classList.toggle("is-empty", !!text);
  }
  function setMeta(c, text) {
    var m = c.card && c.card.querySelector("[data-role=meta]");
    if (m) m.textContent = text;
  }
  function draw(c, data, opts, rows, t0) {
    c.data = data;
    if (!c.u) {
      c.el.textContent = "";
      c.u = new uPlot(opts(), data, c.el);
    } else {
      c.u.setData(data, true);
      c.u.setScale("x", { min: c.xMin, max: c.xMax });
    }
    c.stale = false;
    c.el.dataset.points = String(rows);
    c.el.dataset.lastMs = String(lastX(data[0]));
    c.el.dataset.renderMs = String(Math.round(performance.now() - t0));
    c.el.dataset.state = "ready";
    c.el.setAttribute("aria-busy", "false");
  }
  function lastX(xs) { return xs.length ? Math.round(xs[xs.length - 1]) : ""; }
  function emptyData(n) {
    var d = [[]];
    for (var i = 1; i < n; i++) d.push([]);
    return d;
  }
  function failed(c, res, what) {
    if (res.status === 404) return "no data: " + (res.body && res.body.detail ? res.body.detail : what + " not found");
    return "no data (" + what + " answered " + res.status + (res.body && res.body.detail ? ": " + res.body.detail : "") + ")";
  }

  // Point charts ---------------------------------------------------------------

  function limitLines(p) {
    var L = p.limits || {}, out = [];
    var red = cssVar("--asset-alarm", "#b91c1c"), amber = cssVar("--asset-warn", "#b45309");
    if (L.hihi != null) out.push([L.hihi, red, [6, 3], "HIHI " + trimNum(L.hihi, p.unit)]);
    if (L.hi != null) out.push([L.hi, amber, [4, 4], "HI " + trimNum(L.hi, p.unit)]);
    if (L.lo != null) out.push([L.lo, amber, [4, 4], "LO " + trimNum(L.lo, p.unit)]);
    if (L.lolo != null) out.push([L.lolo, red, [6, 3], "LOLO " + trimNum(L.lolo, p.unit)]);
    return out;
  }

  function pointChart(el) {
    var tag = el.dataset.tag;
    var p = (asset.points || []).find(function (x) { return x.tag === tag; }) || { tag: tag, name: tag, unit: "" };
    var isBool = p.data_type === "bool", isState = p.data_type === "state";
    var lines = limitLines(p);
    var c = { kind: "points", el: el, card: el.closest(".chart-card"), point: p, width: 0, lastCount: 0 };
    c.opts = function () {
      return baseOpts(c, {
        unit: p.unit,
        axisLabel: isBool ? "share on" : isState ? "state code" : unitLabel(p.unit),
        extra: lines.map(function (l) { return l[0]; }),
        yScale: isBool ? { range: function () { return [-0.05, 1.05]; } } : null,
        series: [{
          label: p.name || p.id || tag,
          stroke: COLORS[0], width: 1.5, spanGaps: false,
          paths: isBool || isState ? uPlot.paths.stepped({ align: 1 }) : undefined,
          fill: isBool ? "rgba(31,111,209,0.12)" : undefined,
          value: function (u, v) { return isBool ? fmtPct(v) : isState ? fmtNum(v, 0) : withUnit(v, p.unit); }
        }],
        draw: function (u) { lines.forEach(function (l) { hline(u, l[0], l[1], l[2], l[3], 1.25); }); }
      });
    };
    c.load = function (signal) {
      var t0 = performance.now();
      var q = Object.assign({ point: tag, buckets: bucketsFor(c), agg: isState ? "last" : "avg" }, rangeParams());
      return getJSON("/telemetry/downsample", q, signal).then(function (res) {
        if (!res.ok) {
          var w = responseWindow({});
          c.xMin = w[0]; c.xMax = w[1]; c.width = 0; c.counts = []; c.failed = true;
          draw(c, emptyData(2), c.opts, 0, t0);
          setStatus(c, failed(c, res, "telemetry"));
          setMeta(c, "");
          return null;
        }
        c.failed = false;
        var b = res.body, win = responseWindow(b);
        c.xMin = win[0]; c.xMax = win[1];
        c.width = b.width_ms || 1000;
        var xs = [], ys = [], cnt = [], gap = Math.max(c.width * 3, (p.period_s || 1) * 3000);
        for (var i = 0; i < b.data.length; i++) {
          var r = b.data[i];
          if (i > 0 && r.ts_ms - xs[xs.length - 1] > gap) { xs.push(xs[xs.length - 1] + c.width); ys.push(null); cnt.push(0); }
          xs.push(r.ts_ms); ys.push(r.value); cnt.push(r.count || 1);
        }
        c.counts = cnt;
        c.tier = b.tier;
        el.dataset.tier = b.tier;
        draw(c, [xs, ys], c.opts, b.data.length, t0);
        setStatus(c, b.data.length ? "" : "no data in this range");
        setMeta(c, "tier " + b.tier + " · " + fmtSpan(c.width) + " buckets (" + b.agg + ") · " + b.data.length + " rows");
        return b;
      });
    };
    return c;
  }

  // live append: readings merge into the last bucket of their width, or start a new one
  function appendLive(c, ts, value) {
    if (!c.data || !isFinite(ts) || typeof value !== "number") return false;
    if (!c.counts || c.counts.length !== c.data[0].length) c.counts = c.data[0].map(function () { return 1; });
    var xs = c.data[0], ys = c.data[1], n = xs.length, w = c.width || 1000;
    if (n && ts < xs[n - 1]) return false;               // older than what is drawn
    if (n && ts < xs[n - 1] + w && ys[n - 1] != null) {
      var k = c.counts[n - 1] || 1;
      ys[n - 1] = c.point.data_type === "state" ? value : (ys[n - 1] * k + value) / (k + 1);
      c.counts[n - 1] = k + 1;
    } else {
      xs.push(w > 1000 ? Math.floor(ts / w) * w : ts); ys.push(value); c.counts.push(1);
    }
    if (ts > c.xMax) { c.xMax = ts; c.xMin = ts - state.span; }
    var drop = 0;
    while (drop < xs.length && xs[drop] < c.xMin) drop++;
    drop = Math.max(drop, xs.length - MAX_LIVE_ROWS);
    if (drop > 0) { xs.splice(0, drop); ys.splice(0, drop); c.counts.splice(0, drop); }
    return true;
  }

  // SPC charts -----------------------------------------------------------------

  function spcChart(el) {
    var tag = el.dataset.tag;
    var p = (asset.points || []).find(function (x) { return x.tag === tag; }) || { tag: tag, unit: "" };
    var c = { kind: "spc", el: el, card: el.closest(".chart-card"), point: p, limits: null };
    var red = cssVar("--asset-alarm", "#b91c1c");
    c.opts = function () {
      return baseOpts(c, {
        unit: p.unit, height: 220,
        extra: function () { var L = c.limits; return L ? [L.ucl, L.lcl, L.center].filter(isFinite) : []; },
        series: [
          { label: "Individuals", stroke: COLORS[0], width: 1.25, spanGaps: true, value: function (u, v) { return withUnit(v, p.unit); } },
          {
            label: "Violation", stroke: red, fill: red, width: 0, paths: function () { return null; },
            points: { show: true, space: 0, size: 7, stroke: red, fill: red },
            value: function (u, v) { return v == null ? "—" : withUnit(v, p.unit); }
          }
        ],
        draw: function (u) {
          var L = c.limits;
          if (!L) return;
          var muted = cssVar("--asset-chart-axis", "#334155");
          if (isFinite(L.sigma)) {
            [-2, -1, 1, 2].forEach(function (k) { hline(u, L.center + k * L.sigma, "rgba(100,116,139,0.55)", [2, 4], null, 1); });
          }
          hline(u, L.center, muted, null, "CL " + withUnit(L.center, p.unit), 1.25);
          hline(u, L.ucl, red, [6, 3], "UCL " + withUnit(L.ucl, p.unit), 1.5);
          hline(u, L.lcl, red, [6, 3], "LCL " + withUnit(L.lcl, p.unit), 1.5);
        }
      });
    };
    c.load = function (signal) {
      var t0 = performance.now();
      var rp = rangeParams();
      var raw = state.span / ((p.period_s || 1) * 1000) <= MAX_RAW_SPC;
      return Promise.all([
        getJSON("/analytics/spc", Object.assign({ point: tag }, rp), signal),
        raw ? getJSON("/telemetry/raw", Object.assign({ point: tag, limit: MAX_RAW_SPC * 2 }, rp), signal).then(function (r) {
          if (r.ok) { r.body.tier = "raw"; r.body.width_ms = 0; r.body.data = r.body.data.filter(function (x) { return x.quality !== "bad"; }); }
          return r;
        }) : getJSON("/telemetry/downsample", Object.assign({ point: tag, buckets: bucketsFor(c), agg: "avg" }, rp), signal)
      ]).then(function (rs) {
        var spc = rs[0], ds = rs[1];
        var win = responseWindow(ds.ok ? ds.body : spc.ok ? spc.body : {});
        c.xMin = win[0]; c.xMax = win[1];
        if (!spc.ok) {
          c.limits = null;
          draw(c, emptyData(3), c.opts, 0, t0);
          setStatus(c, failed(c, spc, "SPC"));
          renderSpcInfo(c, null);
          return null;
        }
        c.limits = spc.body.limits || null;
        var vals = ds.ok ? ds.body.data : [];
        var viol = (spc.body.violations || []).filter(function (v) { return v.detail && typeof v.detail.value === "number"; })
          .sort(function (a, b) { return a.ts_ms - b.ts_ms; });
        var data = joinTables([
          [vals.map(function (r) { return r.ts_ms; }), vals.map(function (r) { return r.value; })],
          [viol.map(function (v) { return v.ts_ms; }), viol.map(function (v) { return v.detail.value; })]
        ]);
        draw(c, data, c.opts, data[0].length, t0);
        setStatus(c, vals.length || viol.length ? "" : "no data in this range");
        var tier = ds.ok ? ds.body.tier : "?";
        el.dataset.tier = tier;
        setMeta(c, (raw ? "individual values" :
          "bucket means (" + tier + ", " + fmtSpan(ds.ok ? ds.body.width_ms : 0) + ")") +
          " · " + viol.length + " violations marked" + ((spc.body.violations || []).length >= 1000 ? " (first 1000)" : ""));
        renderSpcInfo(c, spc.body);
        return spc.body;
      });
    };
    return c;
  }

  var RULE_NAMES = {
    "nelson-1": "beyond 3σ", "nelson-2": "9 on one side", "nelson-3": "6 trending", "nelson-4": "14 alternating",
    "nelson-5": "2 of 3 beyond 2σ", "nelson-6": "4 of 5 beyond 1σ", "nelson-7": "15 within 1σ", "nelson-8": "8 outside 1σ",
    moving_range: "moving range", ewma: "EWMA", cusum_upper: "CUSUM up", cusum_lower: "CUSUM down"
  };

  function renderSpcInfo(c, b) {
    var box = c.card.querySelector("[data-role=spc-info]");
    if (!box) return;
    if (!b) { box.innerHTML = ""; return; }
    var unit = c.point.unit, L = b.limits || {};
    var st = b.status || "unknown";
    var html = '<p class="spc-status"><span class="badge badge-' + esc(st.replace(/_/g, "-")) + '">' + esc(st.replace(/_/g, " ")) + "</span>";
    if (L.center != null) {
      html += " CL " + esc(withUnit(L.center, unit)) + " · UCL " + esc(withUnit(L.ucl, unit)) + " · LCL " + esc(withUnit(L.lcl, unit)) +
        " · σ " + esc(withUnit(L.sigma, unit));
    } else if (b.baseline) {
      html += " collecting the baseline (" + esc(b.collected || 0) + " of " + esc(b.baseline) + " values)";
    }
    html += "</p>";
    var cap = b.capability;
    if (cap) {
      var row = function (name, v, ci) {
        return "<tr><th scope=row>" + name + "</th><td>" + fmtNum(v, 2) + "</td><td>" +
          (ci ? fmtNum(ci.low, 2) + " – " + fmtNum(ci.high, 2) : "—") + "</td></tr>";
      };
      var lvl = cap.cpk_ci && cap.cpk_ci.level ? Math.round(cap.cpk_ci.level * 100) + " %" : "95 %";
      html += '<table class="kv-table"><caption>Capability over the range (n = ' + esc(cap.n) + ", LSL " +
        esc(withUnit(cap.lsl, unit)) + ", USL " + esc(withUnit(cap.usl, unit)) + ')</caption><thead><tr><th scope=col>index</th><th scope=col>value</th><th scope=col>' +
        lvl + " interval</th></tr></thead><tbody>" +
        row("Cp", cap.cp, cap.cp_ci) + row("Cpk", cap.cpk, cap.cpk_ci) + row("Pp", cap.pp, cap.pp_ci) + row("Ppk", cap.ppk, cap.ppk_ci) +
        "</tbody></table>";
    } else if (b.capability_error) {
      html += '<p class="muted">Capability: ' + esc(b.capability_error) + "</p>";
    } else {
      html += '<p class="muted">Capability: no specification limits (lsl/usl) configured.</p>';
    }
    var v = (b.violations || []).slice().sort(function (a, b2) { return b2.ts_ms - a.ts_ms; }).slice(0, 8);
    if (v.length) {
      html += '<table class="kv-table violations"><caption>Latest rule violations</caption><thead><tr><th scope=col>time (' + esc(TZ) +
        ")</th><th scope=col>rule</th><th scope=col>value</th></tr></thead><tbody>" +
        v.map(function (x) {
          return "<tr><td>" + esc(fmtTime(x.ts_ms)) + "</td><td>" + esc(x.rule) + (RULE_NAMES[x.rule] ? " (" + esc(RULE_NAMES[x.rule]) + ")" : "") +
            "</td><td>" + esc(x.detail && typeof x.detail.value === "number" ? withUnit(x.detail.value, unit) : "—") + "</td></tr>";
        }).join("") + "</tbody></table>";
    } else {
      html += '<p class="muted">No rule violations in this range.</p>';
    }
    box.innerHTML = html;
  }

  // Anomaly chart -----------------------------------------------------------------

  function anomalyChart(el) {
    var keys = [];
    if (asset.multivariate) keys.push({ key: "anomaly/" + asset.path, label: "Asset (all points)" });
    (asset.points || []).forEach(function (p) { if (p.anomaly) keys.push({ key: "anomaly/" + p.tag, label: p.name || p.id }); });
    var c = { kind: "anomaly", el: el, card: el.closest(".chart-card") };
    c.opts = function () {
      return baseOpts(c, {
        axisLabel: "score (0–1)", height: 200,
        yScale: { range: function () { return [0, 1.05]; } },
        yValues: function (u, vals) { return vals.map(function (v) { return v.toFixed(1); }); },
        series: keys.map(function (k, i) {
          return { label: k.label, stroke: COLORS[i % COLORS.length], width: i === 0 ? 1.75 : 1.25, spanGaps: false,
            value: function (u, v) { return fmtNum(v, 2); } };
        }),
        draw: function (u) { hline(u, ANOMALY_THRESHOLD, cssVar("--asset-alarm", "#b91c1c"), [6, 3], "threshold " + ANOMALY_THRESHOLD, 1.5); }
      });
    };
    c.load = function (signal) {
      var t0 = performance.now();
      var rp = rangeParams();
      return Promise.all(keys.map(function (k) {
        return getJSON("/analytics/series", Object.assign({ key: k.key, buckets: bucketsFor(c), agg: "max" }, rp), signal);
      })).then(function (rs) {
        var ok = rs.filter(function (r) { return r.ok; });
        var win = responseWindow(ok.length ? ok[0].body : {});
        c.xMin = win[0]; c.xMax = win[1];
        var tables = rs.map(function (r) {
          var d = r.ok ? r.body.data.filter(function (x) { return x.ts_ms >= c.xMin - 86400e3; }) : [];
          return [d.map(function (x) { return x.ts_ms; }), d.map(function (x) { return x.value; })];
        });
        var data = keys.length ? joinTables(tables) : [[]];
        draw(c, data, c.opts, data[0].length, t0);
        var missing = rs.length - ok.length;
        setStatus(c, !keys.length ? "no anomaly detection configured" :
          !ok.length ? failed(c, rs[0], "anomaly series") : data[0].length ? "" : "no data in this range");
        var latest = tables.map(function (t, i) {
          return keys[i].label + " " + (t[1].length ? fmtNum(t[1][t[1].length - 1], 2) : "—");
        });
        setMeta(c, "highest score per bucket · latest: " + latest.join(", ") + (missing ? " · " + missing + " series unavailable" : ""));
        return null;
      });
    };
    return c;
  }

  // RUL chart -------------------------------------------------------------------

  function rulChart(el) {
    var c = { kind: "rul", el: el, card: el.closest(".chart-card"), yMax: 1 };
    var H = function (v) { return v == null ? null : v / 3600; };
    c.opts = function () {
      return baseOpts(c, {
        axisLabel: "remaining life (h)", height: 200,
        yScale: { range: function () { return [0, c.yMax]; } },
        series: [
          { label: "lower", stroke: "rgba(31,111,209,0.45)", width: 1, dash: [4, 3], value: function (u, v) { return withUnit(v, "h", 1); } },
          { label: "median", stroke: COLORS[0], width: 2, value: function (u, v) { return withUnit(v, "h", 1); } },
          { label: "upper", stroke: "rgba(31,111,209,0.45)", width: 1, dash: [4, 3], value: function (u, v) { return withUnit(v, "h", 1); } }
        ],
        bands: [{ series: [3, 1], fill: "rgba(31,111,209,0.14)" }]
      });
    };
    c.load = function (signal) {
      var t0 = performance.now();
      var rp = rangeParams();
      return Promise.all([
        getJSON("/analytics/series", Object.assign({ key: "rul/" + asset.path, buckets: bucketsFor(c), agg: "last" }, rp), signal),
        getJSON("/analytics/rul", { asset: asset.path }, signal)
      ]).then(function (rs) {
        var s = rs[0], now = rs[1];
        var win = responseWindow(s.ok ? s.body : {});
        c.xMin = win[0]; c.xMax = win[1];
        var d = s.ok ? s.body.data.filter(function (x) { return isFinite(x.value); }) : [];
        var data = [d.map(function (x) { return x.ts_ms; }), d.map(function (x) { return H(x.lower); }),
          d.map(function (x) { return H(x.value); }), d.map(function (x) { return H(x.upper); })];
        var med = data[2].filter(function (v) { return v != null; });
        var up = data[3].filter(function (v) { return v != null; });
        var top = med.length ? Math.max.apply(null, med) : 1;
        // very wide early intervals would flatten the median: the axis stops at twice the highest median
        c.yMax = Math.max(1, Math.min(up.length ? Math.max.apply(null, up) : top, top * 2)) * 1.05;
        draw(c, data, c.opts, d.length, t0);
        setStatus(c, s.ok ? (d.length ? "" : "no estimates in this range") : failed(c, s, "RUL series"));
        setMeta(c, "median with its interval, hours; the axis is cut at twice the highest median");
        renderRulNow(now);
        return null;
      });
    };
    return c;
  }

  function renderRulNow(res) {
    var box = root.querySelector("[data-role=rul-now]");
    if (!box) return;
    if (!res.ok) { box.innerHTML = '<p class="muted">' + esc(failed(null, res, "RUL")) + "</p>"; return; }
    var r = res.body;
    var st = r.state || "insufficient_data";
    var html = '<p class="rul-headline">';
    if (r.median != null && isFinite(r.median)) {
      html += '<span class="rul-value">' + esc(withUnit(r.median / 3600, "h", 1)) + "</span> <span class=muted>(" +
        Math.round((r.level || 0.9) * 100) + " % interval " + esc(fmtNum(r.lower / 3600, 1)) + " – " + esc(fmtNum(r.upper / 3600, 1)) + " h)</span>";
    } else {
      html += '<span class="rul-value">no estimate yet</span>';
    }
    html += ' <span class="badge badge-' + esc(st.replace(/_/g, "-")) + '">' + esc(st.replace(/_/g, " ")) + "</span>";
    if (r.alert) html += ' <span class="badge badge-alert" role="status">predictive maintenance alert</span>';
    html += "</p><p class=muted>";
    if (r.ts) html += "estimated " + esc(fmtTime(Date.parse(r.ts))) + " (" + esc(TZ) + ")";
    if (r.lead_time_s) html += " · alert when the lower bound is under " + esc(fmtDuration(r.lead_time_s));
    html += "</p>";
    box.innerHTML = html;
  }

  // KPIs ---------------------------------------------------------------------------

  function loadKpi() {
    var box = root.querySelector("[data-role=kpi]");
    if (!box) return Promise.resolve();
    var t0 = performance.now();
    var ids = (asset.points || []).map(function (p) { return p.id; });
    // the KPIs come from the line's OEE state point on this asset: without one the endpoint can only answer 404
    return getJSON("/model/lines/" + asset.line_path, {}).then(function (line) {
      var sp = line.ok && line.body.oee ? line.body.oee.state_point : null;
      if (line.ok && sp && ids.indexOf(sp) < 0) {
        return { ok: false, status: 404, body: { detail: "this asset has no point '" + sp + "', the state point the line's OEE uses to tell failures and repairs" } };
      }
      return getJSON("/analytics/kpi", { asset: asset.path, start: "now-30d", end: "now" });
    }).then(function (res) {
      if (!res.ok) {
        box.innerHTML = '<p class="muted">KPIs not available: ' + esc(res.body && res.body.detail ? res.body.detail : "HTTP " + res.status) + "</p>";
      } else {
        var m = res.body.maintenance || {}, q = res.body.quality || {};
        var mtbf = m.mtbf_s != null ? fmtDuration(m.mtbf_s) : m.mtbf_lower_bound_s != null ? "≥ " + fmtDuration(m.mtbf_lower_bound_s) : "—";
        var cells = [
          ["MTBF", mtbf, m.mtbf_s == null && m.mtbf_lower_bound_s != null ? "lower bound: no failure in the window" : m.failures + " failures"],
          ["MTTR", fmtDuration(m.mttr_s), (m.repairs || 0) + " repairs"],
          ["Availability", fmtPct(m.availability), "maintenance: " + String(m.status || "—").replace(/_/g, " ")],
          ["Defect rate", fmtPct(q.defect_rate), q.total != null ? fmtNum(q.bad, 0) + " of " + fmtNum(q.total, 0) + " units" : ""],
          ["First-pass yield", fmtPct(q.first_pass_yield), "quality: " + String(q.status || "—").replace(/_/g, " ")]
        ];
        box.innerHTML = '<dl class="kpi-grid">' + cells.map(function (k) {
          return '<div class="kpi"><dt>' + esc(k[0]) + "</dt><dd><span class=kpi-value>" + esc(k[1]) + "</span><span class=kpi-note>" + esc(k[2]) + "</span></dd></div>";
        }).join("") + "</dl><p class=muted>Last 30 days, " + esc(fmtShort(Date.parse(res.body.start))) + " – " + esc(fmtShort(Date.parse(res.body.end))) + " (" + esc(TZ) + ")</p>";
      }
      box.dataset.state = "ready";
      box.dataset.renderMs = String(Math.round(performance.now() - t0));
    }, function () {
      box.innerHTML = '<p class="muted">KPIs not available (no answer from the server).</p>';
      box.dataset.state = "ready";
    });
  }

  // ---------------------------------------------------------------- ranges

  function describeRange() {
    var info = root.querySelector("[data-role=range-info]");
    var tierEl = root.querySelector("[data-role=tier-info]");
    if (info) {
      info.textContent = state.live ? "Last " + fmtSpan(state.span) + ", live · times in " + TZ :
        fmtTime(state.start) + " – " + fmtTime(state.end) + " (" + fmtSpan(state.end - state.start) + ") · times in " + TZ;
    }
    if (tierEl) {
      var tiers = {};
      charts.forEach(function (c) { if (c.kind === "points" && c.tier) tiers[c.tier] = true; });
      var t = Object.keys(tiers);
      tierEl.textContent = t.length ? "Served from: " + t.map(function (x) { return x === "raw" ? "raw readings" : x + " rollups"; }).join(", ") : "";
    }
    root.querySelectorAll("[data-range]").forEach(function (b) {
      b.setAttribute("aria-pressed", state.live && b.dataset.range === state.label ? "true" : "false");
    });
    var reset = root.querySelector("[data-action=reset]");
    if (reset) reset.disabled = state.live && state.label === state.home;
  }

  function setRange(r) {
    if (r.label) {
      state.label = r.label; state.span = RANGES[r.label]; state.live = true; state.home = r.label;
      state.start = state.end = null;
    } else {
      var s = Math.max(0, r.start), e = r.end;
      if (e - s < 1000) e = s + 1000;
      state.live = false; state.start = s; state.end = e; state.span = e - s;
    }
    loadAll();
  }

  function loadAll() {
    if (state.abort) state.abort.abort();
    var ctl = typeof AbortController === "function" ? new AbortController() : null;
    state.abort = ctl;
    var gen = ++state.gen;
    var t0 = performance.now();
    document.body.dataset.chartsReady = "0";
    root.setAttribute("aria-busy", "true");
    describeRange();
    charts.forEach(function (c) { c.el.dataset.state = "loading"; c.el.setAttribute("aria-busy", "true"); });
    return Promise.all(charts.map(function (c) {
      return c.load(ctl && ctl.signal).catch(function (err) {
        if (gen !== state.gen || (err && err.name === "AbortError")) return;
        if (!c.u) { c.xMin = Date.now() - state.span; c.xMax = Date.now(); draw(c, emptyData(c.u ? c.data.length : 2), c.opts, 0, performance.now()); }
        c.el.dataset.state = "ready";
        setStatus(c, "no data (request failed)");
      });
    })).then(function () {
      if (gen !== state.gen) return;
      describeRange();
      charts.forEach(function (c) { updateLabel(c); });
      root.setAttribute("aria-busy", "false");
      document.body.dataset.chartsRange = state.live ? state.label : "custom";
      document.body.dataset.chartsMs = String(Math.round(performance.now() - t0));
      document.body.dataset.chartsReady = "1";
    });
  }

  function updateLabel(c) {
    var name = c.point ? (c.point.name || c.point.tag) : c.kind;
    var what = { points: "Trend of ", spc: "SPC individuals chart of ", anomaly: "Anomaly scores", rul: "Remaining useful life" }[c.kind];
    var txt = (c.kind === "points" || c.kind === "spc" ? what + name + (c.point.unit ? " in " + unitLabel(c.point.unit) : "") : what) +
      ", " + (state.live ? "last " + fmtSpan(state.span) : fmtTime(state.start) + " to " + fmtTime(state.end)) + ", " + (c.el.dataset.points || 0) + " rows";
    if (c.kind === "points" && c.data && c.data[1].length) {
      var ys = c.data[1], last = null;
      for (var i = ys.length - 1; i >= 0 && last == null; i--) last = ys[i];
      txt += ", latest " + withUnit(last, c.point.unit);
    }
    c.el.setAttribute("aria-label", txt + ". Arrow keys pan, + and − zoom, Escape resets.");
  }

  // keyboard: arrows pan by a quarter, +/- zoom by two around the middle, Escape/0 back to the preset range
  function onChartKey(ev) {
    var c = byEl.get(ev.currentTarget);
    if (!c || c.xMin == null) return;
    var a = c.xMin, b = c.xMax, w = b - a, now = Date.now();
    switch (ev.key) {
      case "ArrowLeft": setRange({ start: a - w / 4, end: b - w / 4 }); break;
      case "ArrowRight":
        if (state.live) return;
        if (b + w / 4 >= now) setRange({ label: state.home || state.label }); else setRange({ start: a + w / 4, end: b + w / 4 });
        break;
      case "+": case "=": setRange({ start: a + w / 4, end: b - w / 4 }); break;
      case "-": case "_": setRange({ start: a - w / 2, end: Math.min(now, b + w / 2) }); break;
      case "Escape": case "0":
        if (state.live && state.label === state.home) return;
        setRange({ label: state.home || state.label }); break;
      default: return;
    }
    ev.preventDefault();
  }

  // ---------------------------------------------------------------- live updates

  var dirty = new Set(), frame = 0;
  function scheduleFrame() {
    if (!frame) frame = requestAnimationFrame(flush);
  }
  function flush() {
    frame = 0;
    dirty.forEach(function (c) {
      if (!c.u) return;
      if (c.visible === false || document.hidden) { c.stale = true; return; }
      c.u.batch(function () {
        c.u.setData(c.data, true);
        c.u.setScale("x", { min: c.xMin, max: c.xMax });
      });
      c.el.dataset.points = String(c.data[0].length);
      c.el.dataset.lastMs = String(lastX(c.data[0]));
      c.stale = false;
    });
    dirty.clear();
  }
  function toMs(ts) {
    if (typeof ts === "number") return ts < 1e11 ? ts * 1000 : ts > 1e14 ? ts / 1000 : ts;  // s, ms or µs
    if (typeof ts === "string") return Date.parse(ts);
    return NaN;
  }
  document.addEventListener("pg:latest", function (ev) {
    if (!state.live || document.body.dataset.chartsReady !== "1") return;
    var d = ev.detail || {}, vals = d.values || {};
    Object.keys(vals).forEach(function (tag) {
      var c = pointCharts[tag], r = vals[tag];
      if (!c || !r || r.value == null || r.quality === 2 || r.quality === "bad") return;
      var ts = r.ts_ms != null ? Number(r.ts_ms) : toMs(r.ts != null ? r.ts : d.ts);
      var v = typeof r.value === "boolean" ? (r.value ? 1 : 0) : r.value;
      if (appendLive(c, ts, v)) {
        if (!c.u || !c.data[0].length) return;
        if (c.failed) return;                            // the point's series is unavailable: keep saying why
        if (c.el.classList.contains("is-empty")) setStatus(c, "");
        dirty.add(c);
      }
    });
    if (dirty.size) scheduleFrame();
  });

  // ---------------------------------------------------------------- set-up

  root.querySelectorAll("[data-chart]").forEach(function (el) {
    var kind = el.dataset.chart, c = null;
    if (kind === "points") c = pointChart(el);
    else if (kind === "spc") c = spcChart(el);
    else if (kind === "anomaly") c = anomalyChart(el);
    else if (kind === "rul") c = rulChart(el);
    if (!c) return;
    charts.push(c);
    byEl.set(el, c);
    if (kind === "points") pointCharts[c.point.tag] = c;
    el.tabIndex = 0;
    el.setAttribute("role", "img");
    el.addEventListener("keydown", onChartKey);
  });

  if ("IntersectionObserver" in window) {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (en) {
        var c = byEl.get(en.target);
        if (!c) return;
        c.visible = en.isIntersecting;
        if (c.visible && c.stale) { dirty.add(c); scheduleFrame(); }
      });
    }, { rootMargin: "200px" });
    charts.forEach(function (c) { io.observe(c.el); });
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { charts.forEach(function (c) { if (c.stale) dirty.add(c); }); scheduleFrame(); }
  });

  var resizeFrame = 0;
  function resizeAll() {
    resizeFrame = 0;
    charts.forEach(function (c) {
      if (!c.u) return;
      var w = Math.max(200, c.el.clientWidth);
      if (Math.abs(w - c.u.width) > 1) c.u.setSize({ width: w, height: c.u.height });
    });
  }
  if ("ResizeObserver" in window) {
    new ResizeObserver(function () { if (!resizeFrame) resizeFrame = requestAnimationFrame(resizeAll); }).observe(root);
  } else {
    window.addEventListener("resize", function () { if (!resizeFrame) resizeFrame = requestAnimationFrame(resizeAll); });
  }

  root.querySelectorAll("[data-range]").forEach(function (b) {
    b.addEventListener("click", function () { setRange({ label: b.dataset.range }); });
  });
  var resetBtn = root.querySelector("[data-action=reset]");
  if (resetBtn) resetBtn.addEventListener("click", function () { setRange({ label: state.home || "1h" }); });

  // current values: live.js keeps [data-live-point] up to date; fill in what is empty until its first event
  var empty = Array.prototype.filter.call(root.querySelectorAll("[data-live-point]"), function (s) {
    return !s.textContent.trim() || s.textContent.trim() === "—";
  });
  if (empty.length) {
    fetch(API + "/telemetry/latest", {
      method: "POST", headers: { "content-type": "application/json", accept: "application/json", "X-CSRF-Token": window.pgLive.csrf() },
      body: JSON.stringify(empty.map(function (s) { return s.dataset.livePoint; }))
    }).then(function (r) { return r.ok ? r.json() : { data: [] }; }).then(function (b) {
      var m = {};
      (b.data || []).forEach(function (x) { m[x.point] = x; });
      empty.forEach(function (s) {
        var x = m[s.dataset.livePoint], t = s.textContent.trim();
        if (!x || x.value == null || (t && t !== "—")) return;
        s.textContent = typeof x.value === "boolean" ? (x.value ? "on" : "off") : withUnit(x.value, s.dataset.unit);
        if (x.quality && x.quality !== "good") s.dataset.quality = x.quality;
      });
    }, function () { /* live.js will fill them */ });
  }

  var initial = root.dataset.range && RANGES[root.dataset.range] ? root.dataset.range : "1h";
  state.home = initial;
  setRange({ label: initial });
  loadKpi();
})();

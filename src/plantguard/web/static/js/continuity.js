// The continuity page: incident actions, step approvals and what-if, through /api/continuity with the CSRF token.
(function () {
  "use strict";
  const flash = document.querySelector("[data-flash]");
  function say(text, bad) { if (flash) { flash.textContent = text; flash.classList.toggle("error", !!bad); } }
  async function post(url, body) {
    const r = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": window.pgLive ? window.pgLive.csrf() : "" },
      body: JSON.stringify(body) });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) { throw new Error((j && (j.detail || j.message)) || ("HTTP " + r.status)); }
    return j;
  }
  function hours(s) { return s === null || s === undefined ? "never" : (s / 3600).toFixed(1) + " h"; }
  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button");
    if (!b) { return; }
    try {
      if (b.dataset.incidentAction) {
        const id = b.closest("[data-incident]").dataset.incident;
        await post("/api/continuity/incidents/" + id, { action: b.dataset.incidentAction });
        location.reload();
      } else if (b.dataset.approve || b.dataset.reject) {
        const [run, step] = (b.dataset.approve || b.dataset.reject).split("/");
        await post("/api/continuity/runs/" + run + "/steps/" + encodeURIComponent(step), { approve: !!b.dataset.approve });
        say("Recorded."); setTimeout(() => location.reload(), 800);
      } else if (b.dataset.whatIf) {
        const out = document.querySelector("[data-blast-radius]");
        const j = await post("/api/continuity/what-if", { nodes: [b.dataset.whatIf] });
        out.replaceChildren();
        const h = document.createElement("h3");
        h.textContent = "If " + b.dataset.whatIf + " fails now (" + j.elapsed_ms + " ms): " + j.services.length + " service(s), cost " + j.cost_per_hour_now + " per hour now";
        out.append(h);
        const ul = document.createElement("ul");
        for (const s of j.services) {
          const li = document.createElement("li");
          li.textContent = s.name + ": below its MBCO after " + hours(s.disrupted_at_s) + ", down after " + hours(s.down_at_s) + " (" + s.path.join(" → ") + ")";
          ul.append(li);
        }
        for (const n of j.nodes.slice(0, 200)) {
          const li = document.createElement("li");
          li.className = "muted";
          li.textContent = n.id + " (" + n.kind + "): degraded after " + hours(n.degraded_at_s) + ", down after " + hours(n.down_at_s) + (n.reason ? " — " + n.reason : "");
          ul.append(li);
        }
        out.append(ul);
      }
    } catch (e) { say(String(e.message || e), true); }
  });
})();

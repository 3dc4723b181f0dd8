// The maturity pages: assessments, attestations, rollout commands, the improvement backlog and training records,
// through /api/maturity with the session's CSRF token.
(function () {
  "use strict";
  const flash = document.querySelector("[data-flash]");
  function say(text, bad) { if (flash) { flash.textContent = text; flash.classList.toggle("error", !!bad); } }
  async function send(method, url, body) {
    const r = await fetch(url, { method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": window.pgLive ? window.pgLive.csrf() : "" },
      body: JSON.stringify(body || {}) });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) { throw new Error((j && (j.detail || j.message)) || ("HTTP " + r.status)); }
    return j;
  }
  function later() { setTimeout(() => location.reload(), 900); }
  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button");
    if (!b || b.type === "submit") { return; }
    try {
      if (b.hasAttribute("data-record-assessment")) {
        const j = await send("POST", "/api/maturity/assessments", {});
        say("Assessment " + j.id + " recorded."); later();
      } else if (b.dataset.rolloutAction) {
        const j = await send("POST", "/api/maturity/rollouts/" + encodeURIComponent(b.dataset.name) + "/" + b.dataset.rolloutAction, {});
        say(b.dataset.rolloutAction + ": " + (j.verdict || j.status || "done") + (j.reasons ? " — " + j.reasons.slice(0, 2).join("; ") : "")); later();
      } else if (b.hasAttribute("data-sync-actions")) {
        const j = await send("POST", "/api/maturity/actions/sync", {});
        say(j.length + " action(s) added."); later();
      } else if (b.dataset.actionState) {
        const id = b.closest("[data-action]").dataset.action;
        await send("PATCH", "/api/maturity/actions/" + id, { state: b.dataset.actionState });
        say("Action " + id + " " + b.dataset.actionState + "."); later();
      } else if (b.hasAttribute("data-verify")) {
        const id = b.closest("[data-action]").dataset.action;
        const j = await send("POST", "/api/maturity/actions/" + id + "/verify", {});
        say("Action " + id + ": " + j.verification.verdict.replace("_", " ") + " — " + j.verification.result.reason); later();
      }
    } catch (e) { say(e.message, true); }
  });
  function form(sel, url, shape) {
    const f = document.querySelector(sel);
    if (!f) { return; }
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const d = Object.fromEntries(new FormData(f).entries());
      try { await send("POST", url, shape(d)); say("Recorded."); later(); } catch (e) { say(e.message, true); }
    });
  }
  form("[data-attest]", "/api/maturity/attestations", (d) => ({ indicator: d.indicator, statement: d.statement, expires_at: d.expires_at || null }));
  form("[data-new-action]", "/api/maturity/actions", (d) => ({ title: d.title, owner: d.owner, due_at: d.due_at || null }));
  form("[data-training]", "/api/maturity/training", (d) => ({ person: d.person, skill: d.skill, completed_at: d.completed_at || null }));
})();

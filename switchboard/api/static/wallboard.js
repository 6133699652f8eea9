// Supervisor wallboard: queue figures, agents, 34 provinces; live over the websocket.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const S = { figures: null, agents: [], waiting: [], provinces: [], reasons: [] };

  function reasonLabel(code) {
    const found = S.reasons.find((c) => c.code === code);
    return found ? SB.codeLabel(found) : code;
  }

  function provinceName(p) { return SB.getLang() === "vi" ? p.name_vi : p.name_en; }
  function provinceById(id) { return S.provinces.find((p) => p.id === id); }

  function renderFigures() {
    const f = S.figures;
    if (!f) return;
    $("t-waiting").textContent = f.waiting;
    $("t-longest").textContent = SB.secs(f.longest_wait_s);
    $("t-sl-now").textContent = SB.pct(f.service_level_now);
    $("t-sl-today").textContent = SB.pct(f.service_level_today);
    $("t-ab-now").textContent = SB.pct(f.abandon_rate_now);
    $("t-ab-today").textContent = SB.pct(f.abandon_rate_today);
    $("t-answered").textContent = f.answered_today;
    $("t-abandoned").textContent = f.abandoned_today;
    $("t-transfers").textContent = f.transfers_today;
    $("updated").textContent = SB.time(f.generated_at);
    $("by-topic").tBodies[0].replaceChildren(...f.by_topic.map((g) => SB.el("tr", { "data-topic": g.key },
      SB.el("td", {}, g.key), SB.el("td", { class: "num" }, g.waiting), SB.el("td", { class: "num" }, SB.secs(g.longest_wait_s)))));
    $("by-state").tBodies[0].replaceChildren(...Object.entries(f.agents_by_state).map(([state, n]) =>
      SB.el("tr", { "data-state": state }, SB.el("td", {}, SB.t(`state.${state}`)), SB.el("td", { class: "num" }, n))));
    const byProvince = Object.fromEntries(f.by_province.map((g) => [g.key, g]));
    $("provinces").tBodies[0].replaceChildren(...S.provinces.map((p) => {
      const g = byProvince[p.id];
      return SB.el("tr", { "data-province": p.id, class: g && g.waiting ? "busy" : "" },
        SB.el("td", {}, provinceName(p)), SB.el("td", {}, SB.t(p.region)),
        SB.el("td", { class: "num" }, g ? g.waiting : 0), SB.el("td", { class: "num" }, g ? SB.secs(g.longest_wait_s) : "–"));
    }));
  }

  function renderAgents() {
    $("agents").tBodies[0].replaceChildren(...S.agents.map((a) => SB.el("tr", { "data-agent": a.id },
      SB.el("td", {}, a.id), SB.el("td", {}, a.name),
      SB.el("td", {}, SB.el("span", { class: `state state-${a.state}`, "data-state": a.state },
        SB.t(`state.${a.state}`) + (a.pause_reason && a.state === "paused" ? ` (${reasonLabel(a.pause_reason)})` : ""))),
      SB.el("td", {}, SB.time(a.since)))));
  }

  function renderWaiting() {
    $("waiting-calls").tBodies[0].replaceChildren(...S.waiting.map((c) => {
      const p = provinceById(c.province);
      return SB.el("tr", { "data-call": c.call_id }, SB.el("td", {}, c.caller), SB.el("td", {}, c.topic),
        SB.el("td", {}, p ? provinceName(p) : (c.province || "–")), SB.el("td", { class: "num" }, SB.secs(c.wait_s)));
    }));
  }

  async function loadWaiting() {
    try { S.waiting = await SB.api("GET", "/api/queues/waiting"); renderWaiting(); } catch (err) { console.warn(err); }
  }

  function onLive(msg) {
    if (msg.type === "queue.figures") { S.figures = msg.data; renderFigures(); loadWaiting(); }
    else if (msg.type === "agents") { S.agents = msg.data; renderAgents(); }
    else if (msg.type === "agent.state") {
      const i = S.agents.findIndex((a) => a.id === msg.data.id);
      if (i >= 0) S.agents[i] = msg.data; else S.agents.push(msg.data);
      renderAgents();
    }
  }

  async function start() {
    $("login").classList.add("hidden");
    $("board").classList.remove("hidden");
    $("sign-out").classList.remove("hidden");
    S.provinces = await SB.api("GET", "/api/provinces");
    S.reasons = (await SB.api("GET", "/api/codes")).pause_reasons;
    S.figures = await SB.api("GET", "/api/queues/figures");
    S.agents = await SB.api("GET", "/api/agents");
    renderFigures(); renderAgents(); await loadWaiting();
    SB.connect(onLive, (up) => {
      const c = $("conn");
      c.className = `status ${up ? "on" : "off"}`;
      c.dataset.i18n = up ? "live" : "offline";
      c.textContent = SB.t(c.dataset.i18n);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    SB.onLang(() => { renderFigures(); renderAgents(); renderWaiting(); });
    SB.supervisorSignIn(start);
  });
})();

// Agent panel: log in, ready/pause, screen pop, transfers and consults, wrap-up, own figures; live over the websocket.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const S = { me: null, agent: null, pop: null, liveStates: 0, targetsFor: null, consult: null, codes: { pause_reasons: [], dispositions: [] }, provinces: {}, live: null };

  // Agent states with a call on screen, and the screen-pop state each one shows.
  const CALL_STATES = { offered: "offered", talking: "talking", wrap_up: "wrap_up" };

  function showError(where, err) {
    $(where).textContent = err ? (err.message || String(err)) : "";
  }

  function provinceName(id) {
    const p = S.provinces[id];
    if (!p) return id || "–";
    return SB.getLang() === "vi" ? p.name_vi : p.name_en;
  }

  function fillSelect(sel, codes) {
    const current = sel.value;
    sel.replaceChildren(...codes.map((c) => SB.el("option", { value: c.code }, SB.codeLabel(c))));
    if (current) sel.value = current;
  }

  function renderAgent() {
    const a = S.agent;
    if (!a) return;
    const st = $("state");
    st.textContent = SB.t(`state.${a.state}`);
    st.className = `state state-${a.state}`;
    st.dataset.state = a.state;
    const reason = S.codes.pause_reasons.find((c) => c.code === a.pause_reason);
    $("state-reason").textContent = a.state === "paused" && a.pause_reason ? (reason ? SB.codeLabel(reason) : a.pause_reason) : "";
    $("state-since").textContent = `${SB.t("since")} ${SB.time(a.since)}`;
    $("btn-login").disabled = a.state !== "logged_out";
    $("btn-ready").disabled = a.state !== "paused";
    $("btn-pause").disabled = !["ready", "paused"].includes(a.state);
    $("pause-reason").disabled = $("btn-pause").disabled;
    $("btn-logout").disabled = !["ready", "paused"].includes(a.state);
    $("wrapup").classList.toggle("hidden", a.state !== "wrap_up");
    const talking = a.state === "talking";
    $("transfer").classList.toggle("hidden", !talking);
    // a new call clears the last transfer's line; it stays readable through the wrap-up after it
    if (talking && !S.targetsFor) { $("transfer-status").textContent = ""; loadTargets(); }
    if (!talking) { S.targetsFor = null; S.consult = null; }
    renderConsult();
  }

  // Where the call may go: topics, ready colleagues, supervisors, the directory (by name; numbers never reach the page).
  async function loadTargets() {
    S.targetsFor = S.agent.current_call_id || "?";
    try {
      const t = await SB.api("GET", `/api/agents/${encodeURIComponent(S.me.agent_id)}/transfer-targets`);
      // the number before each topic is its softphone code: *4<n>#
      $("xfer-topic").replaceChildren(...t.topics.map((x, i) => SB.el("option", { value: x }, `${i + 1} · ${x}`)));
      $("xfer-agent").replaceChildren(...t.colleagues.map((c) => SB.el("option", { value: c.id }, `${c.name} (${c.id})`)));
      $("xfer-number").replaceChildren(...t.directory.map((d) => SB.el("option", { value: d.code }, d.name)));
      $("btn-xfer-agent").disabled = $("btn-consult").disabled = !t.colleagues.length;
      $("btn-xfer-number").disabled = !t.directory.length;
      $("xfer-supervisor").replaceChildren(...t.supervisors.map((x) => SB.el("option", { value: x.id }, x.name)));
      $("btn-xfer-supervisor").disabled = $("btn-consult-supervisor").disabled = !t.supervisors.length;
    } catch (err) { showError("action-error", err); }
  }

  function renderConsult() {
    const c = S.consult;
    $("consult-controls").classList.toggle("hidden", !c);
    if (c) $("consult-with").textContent = `${SB.t("consulting")} ${c.colleague}`;
  }

  async function transfer(kind, target) {
    showError("action-error", null);
    try {
      const r = await SB.api("POST", `/api/agents/${encodeURIComponent(S.me.agent_id)}/transfer`, { kind, target });
      $("transfer-status").textContent = `${SB.t("transferred")} ${r.target}`;
      $("transfer-status").dataset.transfer = r.transfer_id;
    } catch (err) { showError("action-error", err); }
  }

  async function consult(path, body) {
    showError("action-error", null);
    try {
      const r = await SB.api("POST", `/api/agents/${encodeURIComponent(S.me.agent_id)}/${path}`, body);
      S.consult = path === "consult" ? r : null;
      renderConsult();
    } catch (err) { showError("action-error", err); }
  }

  function renderPop() {
    const p = S.pop;
    $("no-call").classList.toggle("hidden", !!p);
    $("pop").classList.toggle("hidden", !p);
    $("pop-card").classList.toggle("pop-offered", !!p && p.state === "offered");
    if (!p) return;
    $("pop-caller").textContent = p.caller;
    $("pop-si").textContent = p.si_code || "–";
    $("pop-topic").textContent = p.topic || "–";
    $("pop-province").textContent = provinceName(p.province);
    $("pop-language").textContent = p.language || "–";
    $("pop-ivr").textContent = (p.ivr_path || []).join(" → ") || "–";
    $("pop-previous").replaceChildren(...(p.previous_calls || []).map((c) =>
      SB.el("div", {}, `${new Date(c.started_at).toLocaleDateString(SB.getLang() === "vi" ? "vi-VN" : "en-GB")} · ${c.topic || "–"} · ${c.outcome || "–"}`)));
    if (!(p.previous_calls || []).length) $("pop-previous").textContent = "–";
  }

  async function loadFigures() {
    try {
      const f = await SB.api("GET", `/api/agents/${encodeURIComponent(S.me.agent_id)}/figures`);
      $("fig-answered").textContent = f.answered;
      $("fig-missed").textContent = f.missed_offers;
      $("fig-talk").textContent = SB.secs(f.talk_s);
      $("fig-aht").textContent = SB.secs(f.avg_handle_s);
      $("fig-survey").textContent = f.survey_avg === null ? "–" : f.survey_avg.toFixed(1);
    } catch (err) { console.warn("figures", err); }
  }

  async function refresh() {
    const id = encodeURIComponent(S.me.agent_id);
    S.agent = await SB.api("GET", `/api/agents/${id}`);
    S.pop = await SB.api("GET", `/api/agents/${id}/call`);
    renderAgent();
    renderPop();
  }

  async function act(path, body) {
    showError("action-error", null);
    const seen = S.liveStates;
    try {
      const view = await SB.api("POST", `/api/agents/${encodeURIComponent(S.me.agent_id)}/${path}`, body || {});
      // A live state that arrived meanwhile is at least as new as this answer (going ready
      // can offer a call at once): the answer only counts when the socket said nothing.
      if (S.liveStates === seen) S.agent = view;
      if (path === "wrap-up" && !CALL_STATES[S.agent.state]) S.pop = null;
      renderAgent();
      renderPop();
      loadFigures();
    } catch (err) { showError("action-error", err); }
  }

  async function completePop(callId) {
    // the pushed offer carries what the ACD knows; the API adds previous calls
    try {
      const full = await SB.api("GET", `/api/agents/${encodeURIComponent(S.me.agent_id)}/call`);
      if (full && S.pop && S.pop.call_id === callId && full.call_id === callId) {
        S.pop = { ...S.pop, previous_calls: full.previous_calls || [], si_code: S.pop.si_code || full.si_code };
        renderPop();
      }
    } catch (err) { console.warn("screen pop", err); }
  }

  function onLive(msg) {
    if (msg.agent_id && msg.agent_id !== S.me.agent_id) return;
    if (msg.type === "agent.state") {
      S.liveStates += 1;
      S.agent = msg.data;
      const popState = CALL_STATES[S.agent.state];
      if (!popState) S.pop = null;   // wrap-up ended by the timer, offer not answered ...
      else if (S.pop) S.pop = { ...S.pop, state: popState };
      renderAgent(); renderPop(); loadFigures();
    }
    else if (msg.type === "agent.offer") {
      S.pop = { state: "offered", previous_calls: [], ...msg.data };
      renderPop();
      completePop(msg.data.call_id);
    }
    else if (msg.type === "agent.call") { S.pop = msg.data; renderPop(); }
    else if (msg.type === "agent.call_ended") { if (S.pop) { S.pop = { ...S.pop, state: "wrap_up" }; renderPop(); } }
  }

  async function start(me) {
    S.me = me;
    $("login").classList.add("hidden");
    $("panel").classList.remove("hidden");
    $("sign-out").classList.remove("hidden");
    $("who").textContent = me.agent_id;
    S.codes = await SB.api("GET", "/api/codes");
    fillSelect($("pause-reason"), S.codes.pause_reasons.filter((c) => c.code !== "no-answer"));
    fillSelect($("disposition"), S.codes.dispositions);
    (await SB.api("GET", "/api/provinces")).forEach((p) => { S.provinces[p.id] = p; });
    await refresh();
    loadFigures();
    S.live = SB.connect(onLive, (up) => {
      const c = $("conn");
      c.className = `status ${up ? "on" : "off"}`;
      c.dataset.i18n = up ? "live" : "offline";
      c.textContent = SB.t(c.dataset.i18n);
      if (up) refresh().catch(() => {});
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("login").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      showError("login-error", null);
      try {
        const me = await SB.api("POST", "/api/session", { agent_id: $("login-agent").value.trim(), token: $("login-token").value.trim() });
        $("login-token").value = "";
        await start(me);
      } catch (err) {
        $("login-error").textContent = SB.t(err.status === 429 ? "too_many" : "login_failed");
      }
    });
    $("btn-login").addEventListener("click", () => act("login"));
    $("btn-ready").addEventListener("click", () => act("ready"));
    $("btn-pause").addEventListener("click", () => act("pause", { reason: $("pause-reason").value }));
    $("btn-logout").addEventListener("click", () => act("logout"));
    $("btn-wrapup").addEventListener("click", () => act("wrap-up", { disposition: $("disposition").value }));
    $("btn-xfer-topic").addEventListener("click", () => transfer("topic", $("xfer-topic").value));
    $("btn-xfer-agent").addEventListener("click", () => transfer("agent", $("xfer-agent").value));
    $("btn-xfer-number").addEventListener("click", () => transfer("number", $("xfer-number").value));
    $("btn-xfer-supervisor").addEventListener("click", () => transfer("supervisor", $("xfer-supervisor").value));
    $("btn-consult").addEventListener("click", () => consult("consult", { kind: "agent", target: $("xfer-agent").value }));
    $("btn-consult-supervisor").addEventListener("click", () => consult("consult", { kind: "supervisor", target: $("xfer-supervisor").value }));
    $("btn-consult-complete").addEventListener("click", () => consult("consult-end", { action: "complete" }));
    $("btn-consult-three").addEventListener("click", () => consult("consult-end", { action: "three_way" }));
    $("btn-consult-cancel").addEventListener("click", () => consult("consult-end", { action: "cancel" }));
    $("sign-out").addEventListener("click", async () => {
      try { await SB.api("DELETE", "/api/session"); } catch (err) { /* already gone */ }
      location.reload();
    });
    SB.onLang(() => {
      fillSelect($("pause-reason"), S.codes.pause_reasons.filter((c) => c.code !== "no-answer"));
      fillSelect($("disposition"), S.codes.dispositions);
      renderAgent(); renderPop();
    });
    try {
      const me = await SB.api("GET", "/api/session");
      if (me.agent_id) { await start(me); return; }
    } catch (err) { /* not signed in */ }
    $("login").classList.remove("hidden");
  });
})();

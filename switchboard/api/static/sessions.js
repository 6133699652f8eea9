// Agent panel: the Q&A sessions this agent moderates (docs/sessions.md). Participants in join order,
// the raised-hands queue (first raised first), give one caller the floor, mute again, mute all,
// remove a caller, end the session. Polls /api/qa-sessions every 2 s while signed in.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const L = {
    vi: { qa: "Phiên hỏi đáp", hands: "Giơ tay (theo thứ tự)", people: "Người tham gia", unmute: "Cho nói",
      mute: "Tắt micrô", kick: "Mời ra", mute_all: "Tắt micrô tất cả", end: "Kết thúc phiên", none: "Chưa có ai",
      moderator: "chủ trì", running: "đang diễn ra", over: "đã kết thúc", confirm_end: "Kết thúc phiên hỏi đáp?" },
    en: { qa: "Q&A session", hands: "Raised hands (in order)", people: "Participants", unmute: "Give the floor",
      mute: "Mute", kick: "Remove", mute_all: "Mute all", end: "End session", none: "Nobody yet",
      moderator: "moderator", running: "running", over: "over", confirm_end: "End the Q&A session?" },
  };
  const t = (k) => (L[SB.getLang()] || L.en)[k] || k;
  let timer = null;

  async function act(sid, path) {
    $("qa-error").textContent = "";
    try {
      await SB.api("POST", `/api/qa-sessions/${encodeURIComponent(sid)}/${path}`, {});
      await refresh();
    } catch (err) { $("qa-error").textContent = err.message || String(err); }
  }

  function person(sid, p) {
    const who = `${p.caller || p.call_id}${p.role === "moderator" ? ` (${t("moderator")})` : ""}`;
    const row = SB.el("li", { "data-uniqueid": p.uniqueid, class: p.muted ? "muted" : "speaking" }, who, " ");
    if (p.role !== "caller") return row;
    const id = encodeURIComponent(p.uniqueid);
    row.append(p.muted
      ? SB.el("button", { type: "button", class: "primary", onclick: () => act(sid, `participants/${id}/unmute`) }, t("unmute"))
      : SB.el("button", { type: "button", onclick: () => act(sid, `participants/${id}/mute`) }, t("mute")),
    " ", SB.el("button", { type: "button", onclick: () => act(sid, `participants/${id}/kick`) }, t("kick")));
    return row;
  }

  function render(list) {
    const box = $("qa-sessions");
    $("qa-card").classList.toggle("hidden", !list.length);
    box.replaceChildren(...list.map((s) => {
      const head = SB.el("h3", {}, `${s.title} · ${s.running ? t("running") : t("over")} · ${s.callers}/${s.capacity}`);
      const hands = SB.el("ol", { class: "qa-hands" }, ...(s.hands.length ? s.hands.map((p) => person(s.session, p)) : [SB.el("li", { class: "empty" }, t("none"))]));
      const people = SB.el("ul", { class: "qa-people" }, ...(s.participants.length ? s.participants.map((p) => person(s.session, p)) : [SB.el("li", { class: "empty" }, t("none"))]));
      const controls = SB.el("div", { class: "row" },
        SB.el("button", { type: "button", disabled: !s.running, onclick: () => act(s.session, "mute-all") }, t("mute_all")), " ",
        SB.el("button", { type: "button", disabled: !s.running, onclick: () => { if (confirm(t("confirm_end"))) act(s.session, "end"); } }, t("end")));
      return SB.el("div", { class: "qa-session", "data-session": s.session }, head,
        SB.el("h4", {}, t("hands")), hands, SB.el("h4", {}, t("people")), people, controls);
    }));
  }

  async function refresh() {
    try {
      render((await SB.api("GET", "/api/qa-sessions")).filter((s) => s.running || s.participants.length));
    } catch (err) {
      if (err.status === 401) { clearInterval(timer); timer = null; }
      $("qa-card").classList.add("hidden");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("qa-title").textContent = t("qa");
    SB.onLang(() => { $("qa-title").textContent = t("qa"); refresh(); });
    // start once signed in (the panel shows), and keep polling
    const watch = new MutationObserver(() => {
      if (!$("panel").classList.contains("hidden") && !timer) { refresh(); timer = setInterval(refresh, 2000); }
    });
    watch.observe($("panel"), { attributes: true, attributeFilter: ["class"] });
  });
})();

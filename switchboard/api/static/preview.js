// Agent panel: preview campaigns (docs/campaigns.md). The next contact held for this agent (name,
// masked number, why they are called), with "Call" (the agent's phone rings first, then the
// contact's number from the campaign's list) and "Skip" (with a reason). Polls every 3 s while signed in.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const L = {
    vi: { preview: "Gọi ra chủ động", call: "Gọi", skip: "Bỏ qua", reason: "Lý do bỏ qua", why: "Lý do gọi",
      number: "Số điện thoại", name: "Họ tên", held: "Giữ cho bạn đến", attempts: "Số lần đã gọi",
      started: "Đang gọi: điện thoại của bạn đổ chuông trước", skipped: "Đã bỏ qua",
      reasons: ["Đã giải quyết", "Sai người", "Gọi lại sau"] },
    en: { preview: "Outbound preview", call: "Call", skip: "Skip", reason: "Reason to skip", why: "Why",
      number: "Number", name: "Name", held: "Held for you until", attempts: "Attempts so far",
      started: "Calling: your phone rings first", skipped: "Skipped",
      reasons: ["Already resolved", "Wrong person", "Call later"] },
  };
  const t = (k) => (L[SB.getLang()] || L.en)[k] || k;
  let me = null;
  let timer = null;
  let shown = null;

  const base = () => `/api/agents/${encodeURIComponent(me)}/campaign-preview`;

  function render(p) {
    shown = p;
    const card = $("preview-card");
    card.classList.toggle("hidden", !p);
    if (!p) return;
    $("preview-title").textContent = t("preview");
    const rows = [[t("name"), p.name || "–", "preview-name"], [t("number"), p.number, "preview-number"],
      [t("why"), p.why || p.campaign_id, "preview-why"],
      ...Object.entries(p.data || {}).map(([k, v]) => [k, v, `preview-data-${k}`]),
      [t("attempts"), String(p.attempts), "preview-attempts"], [t("held"), SB.time(p.held_until), "preview-held"]];
    $("preview").replaceChildren(...rows.flatMap(([k, v, id]) => [SB.el("dt", {}, k), SB.el("dd", { id }, v)]));
    card.dataset.contact = String(p.contact_id);
    $("preview-reason").replaceChildren(...t("reasons").map((r) => SB.el("option", { value: r }, r)));
    $("btn-preview-call").textContent = t("call");
    $("btn-preview-skip").textContent = t("skip");
  }

  async function refresh() {
    if (!me) return;
    try {
      render(await SB.api("GET", base()));
    } catch (err) {
      if (err.status === 401) { clearInterval(timer); timer = null; }
      render(null);   // logged out of the queue, no campaign: nothing to preview
    }
  }

  async function act(verb, body) {
    if (!shown) return;
    $("preview-error").textContent = "";
    try {
      await SB.api("POST", `${base()}/${shown.contact_id}/${verb}`, body);
      $("preview-status").textContent = verb === "call" ? t("started") : t("skipped");
      render(null);
      if (verb === "skip") await refresh();
    } catch (err) { $("preview-error").textContent = err.message || String(err); }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("btn-preview-call").addEventListener("click", () => act("call", {}));
    $("btn-preview-skip").addEventListener("click", () => act("skip", { reason: $("preview-reason").value }));
    SB.onLang(() => render(shown));
    const watch = new MutationObserver(async () => {
      if ($("panel").classList.contains("hidden") || timer) return;
      try { me = (await SB.api("GET", "/api/session")).agent_id; } catch (err) { return; }
      if (!me) return;
      refresh();
      timer = setInterval(refresh, 3000);
    });
    watch.observe($("panel"), { attributes: true, attributeFilter: ["class"] });
  });
})();

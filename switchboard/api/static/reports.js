// Reports page: a day, week or month at a glance, from the report API (GET /api/reports/...).
// Service level and abandon rate per half-hour (day) or per day (week, month) against the
// targets, the IVR funnel, answered calls by province, satisfied callers against the target;
// each table downloads as CSV from the same API.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const S = { targets: { service_level: 0.8, service_level_s: 20, satisfaction: 0.9 }, provinces: [], last: null };

  function iso(d) { return d.toISOString().slice(0, 10); }

  // [from, to] (local dates, both included) of the view around ``day`` (YYYY-MM-DD).
  function range(view, day) {
    const d = new Date(`${day}T00:00:00Z`);
    if (view === "week") {
      const monday = new Date(d); monday.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
      const sunday = new Date(monday); sunday.setUTCDate(monday.getUTCDate() + 6);
      return [iso(monday), iso(sunday)];
    }
    if (view === "month") {
      const first = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
      const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0));
      return [iso(first), iso(last)];
    }
    return [day, day];
  }

  function url(name, from, to, csv) {
    return `/api/reports/${name}?from=${from}&to=${to}${csv ? "&format=csv" : ""}`;
  }

  async function table(name, from, to) {
    const t = await SB.api("GET", url(name, from, to));
    return t.rows.map((r) => Object.fromEntries(t.columns.map((c, i) => [c, r[i]])));
  }

  const SUMMED = ["calls", "offered", "answered", "answered_in_sl", "abandoned", "short_abandoned", "callbacks",
                  "csat_responses", "csat_satisfied"];

  function sum(rows) {
    const out = Object.fromEntries(SUMMED.map((k) => [k, 0]));
    rows.forEach((r) => SUMMED.forEach((k) => { out[k] += r[k] || 0; }));
    return out;
  }

  const share = (n, d) => (d ? n / d : null);
  const slOf = (r) => share(r.answered_in_sl, r.offered);
  const abandonOf = (r) => share(r.abandoned, r.offered);   // abandoned / offered (short abandons apart)

  function provinceName(key) {
    const p = S.provinces.find((x) => x.id === key || x.name_vi === key || x.name_en === key);
    return p ? (SB.getLang() === "vi" ? p.name_vi : p.name_en) : key;
  }

  function render() {
    const L = S.last;
    if (!L) return;
    const { view, from, to, periods, funnel, provinces } = L;
    const total = sum(periods);
    $("range").textContent = from === to ? from : `${from} – ${to}`;
    $("t-offered").textContent = total.offered;
    $("t-answered").textContent = total.answered;
    $("t-sl").textContent = SB.pct(slOf(total));
    $("t-sl-target").textContent = `${SB.t("target")} ${SB.pct(S.targets.service_level)} / ${S.targets.service_level_s}s`;
    $("t-abandon").textContent = SB.pct(abandonOf(total));
    const satisfied = share(total.csat_satisfied, total.csat_responses);
    $("t-satisfied").textContent = SB.pct(satisfied);
    $("t-satisfied-target").textContent = `${SB.t("target")} ${SB.pct(S.targets.satisfaction)}`;

    const label = (p) => (view === "day" ? p.period.slice(11, 16) : p.period.slice(5, 10));
    Charts.lines($("c-periods"), periods.map(label), [
      { name: SB.t("sl"), cls: "sl", values: periods.map(slOf) },
      { name: SB.t("abandon_rate"), cls: "abandon", values: periods.map(abandonOf) },
    ], [{ value: S.targets.service_level, cls: "sl", label: `${SB.t("target")} ${SB.pct(S.targets.service_level)}` }]);
    $("periods").tBodies[0].replaceChildren(...periods.map((p) => SB.el("tr", { "data-period": label(p) },
      SB.el("td", {}, label(p)), SB.el("td", { class: "num" }, p.offered), SB.el("td", { class: "num" }, p.answered),
      SB.el("td", { class: "num" }, SB.pct(slOf(p))), SB.el("td", { class: "num" }, SB.pct(abandonOf(p))))));

    const nodes = [...funnel].sort((a, b) => b.visits - a.visits || a.node.localeCompare(b.node));
    Charts.bars($("c-funnel"), nodes.map((n) => ({ label: n.node, value: n.visits })), { cls: "funnel" });
    $("funnel").tBodies[0].replaceChildren(...nodes.map((n) => SB.el("tr", { "data-node": n.node },
      SB.el("td", {}, n.node), SB.el("td", { class: "num" }, n.visits), SB.el("td", { class: "num" }, n.dropped))));

    const byProv = {};
    provinces.filter((r) => r.group !== "(none)").forEach((r) => {
      byProv[r.group] = byProv[r.group] || [];
      byProv[r.group].push(r);
    });
    const provs = Object.entries(byProv).map(([key, rows]) => ({ key, ...sum(rows) }))
      .sort((a, b) => b.answered - a.answered || a.key.localeCompare(b.key));
    Charts.bars($("c-provinces"), provs.map((p) => ({ label: provinceName(p.key), value: p.answered })), { cls: "province" });
    $("provinces").tBodies[0].replaceChildren(...provs.map((p) => SB.el("tr", { "data-province": p.key },
      SB.el("td", {}, provinceName(p.key)), SB.el("td", { class: "num" }, p.offered),
      SB.el("td", { class: "num" }, p.answered), SB.el("td", { class: "num" }, SB.pct(slOf(p))))));

    Charts.bars($("c-satisfaction"), [{ label: SB.t("satisfied"), value: satisfied ?? 0, text: SB.pct(satisfied) }],
      { max: 1, cls: "satisfied", target: S.targets.satisfaction,
        targetLabel: `${SB.t("target")} ${SB.pct(S.targets.satisfaction)}` });
    const rows = [["offered", total.offered], ["answered", total.answered], ["answered_in_sl", total.answered_in_sl],
      ["abandoned", total.abandoned], ["short_abandoned", total.short_abandoned], ["callbacks", total.callbacks],
      ["csat_responses", total.csat_responses], ["csat_satisfied", total.csat_satisfied]];
    $("totals").tBodies[0].replaceChildren(...rows.map(([k, v]) => SB.el("tr", { "data-key": k },
      SB.el("td", {}, SB.t(k)), SB.el("td", { class: "num" }, v))));

    const periodsName = view === "day" ? "halfhourly" : "daily";
    $("csv-periods").href = url(periodsName, from, to, true);
    $("csv-funnel").href = url("ivr-dropoff", from, to, true);
    $("csv-provinces").href = url("daily-by-province", from, to, true);
    $("csv-totals").href = url("daily", from, to, true);
  }

  async function load() {
    const view = $("view").value;
    const [from, to] = range(view, $("date").value);
    $("report-error").textContent = "";
    try {
      const [periods, funnel, provinces] = await Promise.all([
        table(view === "day" ? "halfhourly" : "daily", from, to), table("ivr-dropoff", from, to),
        table("daily-by-province", from, to)]);
      S.last = { view, from, to, periods, funnel, provinces };
      const q = new URLSearchParams({ view, date: $("date").value });
      history.replaceState(null, "", `?${q}`);
      render();
    } catch (err) {
      $("report-error").textContent = `${SB.t("error")}: ${err.message}`;
    }
  }

  async function start() {
    $("login").classList.add("hidden");
    $("reports").classList.remove("hidden");
    $("sign-out").classList.remove("hidden");
    const meta = await SB.api("GET", "/api/reports");
    if (meta.targets) S.targets = meta.targets;
    S.provinces = await SB.api("GET", "/api/provinces");
    const q = new URLSearchParams(location.search);
    $("view").value = ["day", "week", "month"].includes(q.get("view")) ? q.get("view") : "day";
    // today in the care center's time zone (the report API's days are local days)
    $("date").value = q.get("date") || new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Ho_Chi_Minh" }).format(new Date());
    await load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    $("view").addEventListener("change", load);
    SB.onLang(render);
    SB.supervisorSignIn(start);
  });
})();

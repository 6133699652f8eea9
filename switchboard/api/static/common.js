// Shared by the agent panel and the wallboard: i18n, API calls, live socket.
"use strict";

const SB = (() => {
  const T = {
    vi: {
      title_agent: "Bảng điều khiển điện thoại viên", title_wallboard: "Bảng giám sát tổng đài",
      agent_id: "Mã điện thoại viên", token: "Mã truy cập", sign_in: "Đăng nhập", sign_out: "Thoát",
      login_failed: "Sai mã điện thoại viên hoặc mã truy cập", too_many: "Sai quá nhiều lần, thử lại sau",
      state: "Trạng thái", queue_login: "Vào ca", queue_logout: "Kết thúc ca", ready: "Sẵn sàng",
      pause: "Tạm nghỉ", reason: "Lý do", wrap_up: "Kết thúc xử lý", disposition: "Kết quả",
      no_call: "Không có cuộc gọi", call: "Cuộc gọi", caller: "Số gọi đến", si_code: "Mã số BHXH",
      topic: "Chủ đề", province: "Tỉnh/thành", language: "Ngôn ngữ", ivr_path: "Đường đi IVR",
      previous_calls: "Cuộc gọi trước", figures_today: "Số liệu hôm nay", answered: "Đã trả lời",
      missed_offers: "Cuộc bỏ lỡ", talk_time: "Thời gian đàm thoại", avg_handle: "Thời gian xử lý TB",
      survey_avg: "Điểm khảo sát TB", waiting: "Đang chờ", longest_wait: "Chờ lâu nhất",
      sl_now: "Mức phục vụ (hiện tại)", sl_today: "Mức phục vụ (hôm nay)", abandon_now: "Tỷ lệ bỏ máy (hiện tại)",
      abandon_today: "Tỷ lệ bỏ máy (hôm nay)", abandoned: "Bỏ máy", by_topic: "Theo chủ đề",
      agents: "Điện thoại viên", agents_by_state: "Theo trạng thái", provinces: "34 tỉnh, thành phố",
      region: "Miền", name: "Tên", since: "Từ lúc", waiting_calls: "Cuộc gọi đang chờ", wait: "Thời gian chờ",
      live: "Trực tuyến", offline: "Mất kết nối", error: "Lỗi", north: "Bắc", central: "Trung", south: "Nam",
      "state.logged_out": "Chưa vào ca", "state.ready": "Sẵn sàng", "state.offered": "Đang đổ chuông",
      "state.ringing": "Đang đổ chuông", "state.talking": "Đang đàm thoại", "state.wrap_up": "Đang hoàn tất",
      "state.paused": "Tạm nghỉ", "state.offline": "Ngoại tuyến",
      title_reports: "Báo cáo tổng đài", view: "Xem theo", view_day: "Ngày", view_week: "Tuần", view_month: "Tháng",
      date: "Ngày", show: "Xem", offered: "Cuộc gọi vào hàng chờ", sl: "Mức phục vụ", abandon_rate: "Tỷ lệ bỏ máy",
      satisfied: "Hài lòng", target: "Mục tiêu", sl_by_period: "Mức phục vụ và tỷ lệ bỏ máy theo thời gian",
      period: "Thời gian", ivr_funnel: "Phễu IVR: số cuộc gọi đến từng bước", ivr_node: "Bước IVR",
      visits: "Lượt đến", dropped: "Gác máy tại đây", answered_by_province: "Cuộc gọi đã trả lời theo tỉnh, thành phố",
      satisfaction: "Mức độ hài lòng (điểm 4-5)", csv: "Tải CSV", answered_in_sl: "Trả lời trong ngưỡng",
      short_abandoned: "Bỏ máy sớm", callbacks: "Gọi lại", csat_responses: "Lượt đánh giá",
      csat_satisfied: "Đánh giá hài lòng",
      transfer: "Chuyển cuộc gọi", transfer_topic: "Chuyển theo chủ đề", transfer_agent: "Chuyển cho đồng nghiệp",
      transfer_number: "Chuyển ra cơ quan BHXH", transfer_supervisor: "Chuyển cho giám sát viên", consult: "Hỏi ý kiến", consult_complete: "Chuyển máy",
      consult_three_way: "Gọi ba bên", consult_cancel: "Quay lại người gọi", consulting: "Đang hỏi ý kiến",
      transferred: "Đã chuyển:", transfers: "Chuyển cuộc gọi",
    },
    en: {
      title_agent: "Agent panel", title_wallboard: "Supervisor wallboard",
      agent_id: "Agent ID", token: "Access token", sign_in: "Sign in", sign_out: "Sign out",
      login_failed: "Wrong agent ID or token", too_many: "Too many failed attempts, try again later",
      state: "State", queue_login: "Start shift", queue_logout: "End shift", ready: "Ready",
      pause: "Pause", reason: "Reason", wrap_up: "End wrap-up", disposition: "Disposition",
      no_call: "No call", call: "Call", caller: "Caller", si_code: "Social insurance code",
      topic: "Topic", province: "Province", language: "Language", ivr_path: "IVR path",
      previous_calls: "Previous calls", figures_today: "Today's figures", answered: "Answered",
      missed_offers: "Missed offers", talk_time: "Talk time", avg_handle: "Average handle time",
      survey_avg: "Average survey score", waiting: "Waiting", longest_wait: "Longest wait",
      sl_now: "Service level (now)", sl_today: "Service level (today)", abandon_now: "Abandon rate (now)",
      abandon_today: "Abandon rate (today)", abandoned: "Abandoned", by_topic: "By topic",
      agents: "Agents", agents_by_state: "By state", provinces: "34 provinces and cities",
      region: "Region", name: "Name", since: "Since", waiting_calls: "Waiting calls", wait: "Wait",
      live: "Live", offline: "Disconnected", error: "Error", north: "North", central: "Central", south: "South",
      "state.logged_out": "Logged out", "state.ready": "Ready", "state.offered": "Ringing",
      "state.ringing": "Ringing", "state.talking": "Talking", "state.wrap_up": "Wrap-up",
      "state.paused": "Paused", "state.offline": "Offline",
      title_reports: "Call-center reports", view: "View", view_day: "Day", view_week: "Week", view_month: "Month",
      date: "Date", show: "Show", offered: "Offered (queued)", sl: "Service level", abandon_rate: "Abandon rate",
      satisfied: "Satisfied", target: "Target", sl_by_period: "Service level and abandon rate over time",
      period: "Period", ivr_funnel: "IVR funnel: calls reaching each step", ivr_node: "IVR step",
      visits: "Reached", dropped: "Hung up here", answered_by_province: "Answered calls by province",
      satisfaction: "Satisfaction (scores 4-5)", csv: "Download CSV", answered_in_sl: "Answered within threshold",
      short_abandoned: "Short abandons", callbacks: "Callbacks", csat_responses: "Survey responses",
      csat_satisfied: "Satisfied responses",
      transfer: "Transfer the call", transfer_topic: "Transfer to topic", transfer_agent: "Transfer to colleague",
      transfer_number: "Transfer to office", transfer_supervisor: "Transfer to supervisor", consult: "Consult", consult_complete: "Complete transfer",
      consult_three_way: "Three-way call", consult_cancel: "Back to caller", consulting: "Consulting",
      transferred: "Transferred:", transfers: "Transfers",
    },
  };
  let lang = localStorage.getItem("sb.lang") || "vi";
  const listeners = [];

  function t(key) { return (T[lang] && T[lang][key]) || T.en[key] || key; }

  function applyI18n(root) {
    document.documentElement.lang = lang;
    (root || document).querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    (root || document).querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    });
    const btn = document.getElementById("lang-toggle");
    if (btn) btn.textContent = lang === "vi" ? "English" : "Tiếng Việt";
  }

  function setLang(next) {
    lang = next;
    localStorage.setItem("sb.lang", lang);
    applyI18n();
    listeners.forEach((fn) => fn(lang));
  }

  function onLang(fn) { listeners.push(fn); }
  function getLang() { return lang; }

  async function api(method, path, body) {
    const opts = { method, credentials: "same-origin", headers: { "X-Switchboard-CSRF": "1" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(path, opts);
    if (resp.status === 204) return null;
    const data = await resp.json().catch(() => null);
    if (!resp.ok) {
      const err = new Error((data && data.message) || resp.statusText);
      err.status = resp.status;
      err.errorId = data && data.error_id;
      throw err;
    }
    return data;
  }

  function connect(onMessage, onStatus) {
    let delay = 500;
    let closed = false;
    let ws = null;
    function open() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      ws = new WebSocket(`${proto}//${location.host}/api/ws`);
      ws.onopen = () => { delay = 500; onStatus(true); };
      ws.onmessage = (ev) => { try { onMessage(JSON.parse(ev.data)); } catch (e) { console.error(e); } };
      ws.onclose = (ev) => {
        onStatus(false);
        // 4001: the session was logged out, revoked or expired; back to the sign-in form, no retry
        if (ev.code === 4001) { closed = true; location.reload(); return; }
        if (!closed) { setTimeout(open, delay); delay = Math.min(delay * 2, 10000); }
      };
    }
    open();
    return { close() { closed = true; if (ws) ws.close(); } };
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    });
    children.flat().forEach((c) => node.append(c instanceof Node ? c : document.createTextNode(String(c ?? ""))));
    return node;
  }

  function secs(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.round(s));
    const m = Math.floor(s / 60);
    return m ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s}s`;
  }

  function pct(r) { return r === null || r === undefined ? "–" : `${Math.round(r * 100)}%`; }

  function time(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleTimeString(lang === "vi" ? "vi-VN" : "en-GB", { hour12: false });
  }

  // A supervisor page's sign-in: the #login form (a token opens a session cookie), #sign-out,
  // and a session already open; ``start`` runs once signed in with one of ``roles``.
  function supervisorSignIn(start, roles) {
    const allowed = roles || ["supervisor", "admin"];
    const $ = (id) => document.getElementById(id);
    $("login").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const me = await api("POST", "/api/session", { token: $("login-token").value.trim() });
        $("login-token").value = "";
        if (!allowed.includes(me.role)) throw new Error("role");
        await start();
      } catch (err) {
        $("login-error").textContent = t(err.status === 429 ? "too_many" : "login_failed");
      }
    });
    $("sign-out").addEventListener("click", async () => {
      try { await api("DELETE", "/api/session"); } catch (err) { /* already gone */ }
      location.reload();
    });
    (async () => {
      try {
        const me = await api("GET", "/api/session");
        if (allowed.includes(me.role)) { await start(); return; }
      } catch (err) { /* not signed in */ }
      $("login").classList.remove("hidden");
    })();
  }

  function codeLabel(code) { return code ? (lang === "vi" ? code.label_vi : code.label_en) : ""; }

  document.addEventListener("DOMContentLoaded", () => {
    const btn = document.getElementById("lang-toggle");
    if (btn) btn.addEventListener("click", () => setLang(lang === "vi" ? "en" : "vi"));
    applyI18n();
  });

  return { t, api, connect, el, secs, pct, time, codeLabel, onLang, getLang, applyI18n, supervisorSignIn };
})();

// Small SVG charts for the reports page, drawn here (no library, no build step).
// Every mark carries data-* attributes with the number it shows (the browser test reads them).
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function node(tag, attrs, text) {
    const n = document.createElementNS(NS, tag);
    Object.entries(attrs || {}).forEach(([k, v]) => n.setAttribute(k, String(v)));
    if (text !== undefined) n.textContent = String(text);
    return n;
  }

  function box(svg) {
    const [, , w, h] = svg.getAttribute("viewBox").split(" ").map(Number);
    return { w, h };
  }

  // Shares (0..1, null for none) per label as lines, with horizontal target lines.
  function lines(svg, labels, series, targets) {
    const { w, h } = box(svg);
    const m = { l: 40, r: 10, t: 10, b: 40 };
    const x = (i) => m.l + (labels.length <= 1 ? (w - m.l - m.r) / 2 : i * (w - m.l - m.r) / (labels.length - 1));
    const y = (v) => m.t + (1 - v) * (h - m.t - m.b);
    const out = [];
    [0, 0.5, 1].forEach((v) => {
      out.push(node("line", { x1: m.l, x2: w - m.r, y1: y(v), y2: y(v), class: "grid" }));
      out.push(node("text", { x: m.l - 4, y: y(v) + 4, "text-anchor": "end", class: "axis" }, `${v * 100}%`));
    });
    const step = Math.max(1, Math.ceil(labels.length / 12));
    labels.forEach((lab, i) => {
      if (i % step === 0) out.push(node("text", { x: x(i), y: h - m.b + 16, "text-anchor": "middle", class: "axis" }, lab));
    });
    (targets || []).forEach((t) => {
      out.push(node("line", { x1: m.l, x2: w - m.r, y1: y(t.value), y2: y(t.value), class: `target ${t.cls}`,
                              "data-target": t.value }));
      out.push(node("text", { x: w - m.r, y: y(t.value) - 4, "text-anchor": "end", class: `axis ${t.cls}` }, t.label));
    });
    series.forEach((s) => {
      const pts = s.values.map((v, i) => (v === null ? null : [x(i), y(v)])).filter(Boolean);
      if (pts.length > 1) out.push(node("polyline", { points: pts.map((p) => p.join(",")).join(" "), class: `line ${s.cls}` }));
      s.values.forEach((v, i) => {
        if (v !== null) {
          out.push(node("circle", { cx: x(i), cy: y(v), r: 3.5, class: `dot ${s.cls}`, "data-series": s.cls,
                                    "data-label": labels[i], "data-value": v.toFixed(4) }));
        }
      });
      out.push(node("text", { x: m.l + 6 + 150 * series.indexOf(s), y: h - 6, class: `legend ${s.cls}` }, `■ ${s.name}`));
    });
    svg.replaceChildren(...out);
  }

  // Horizontal bars, one per item {label, value}; an optional target share marks a share bar.
  function bars(svg, items, opts) {
    const { w, h } = box(svg);
    const o = opts || {};
    const m = { l: 130, r: 50, t: 6, b: 6 };
    const max = o.max || Math.max(1, ...items.map((it) => it.value));
    const bh = Math.min(26, (h - m.t - m.b) / Math.max(1, items.length));
    const out = [];
    items.forEach((it, i) => {
      const y = m.t + i * bh;
      const bw = (w - m.l - m.r) * (it.value / max);
      out.push(node("text", { x: m.l - 6, y: y + bh * 0.65, "text-anchor": "end", class: "axis" }, it.label));
      out.push(node("rect", { x: m.l, y: y + 2, width: Math.max(0, bw), height: bh - 4, class: `bar ${o.cls || ""}`,
                              "data-label": it.label, "data-value": it.value }));
      out.push(node("text", { x: m.l + bw + 4, y: y + bh * 0.65, class: "axis" }, it.text ?? it.value));
    });
    if (o.target !== undefined) {
      const tx = m.l + (w - m.l - m.r) * (o.target / max);
      out.push(node("line", { x1: tx, x2: tx, y1: 0, y2: h, class: "target", "data-target": o.target }));
      out.push(node("text", { x: tx + 3, y: h - 4, class: "axis target" }, o.targetLabel || ""));
    }
    svg.replaceChildren(...out);
  }

  return { lines, bars };
})();

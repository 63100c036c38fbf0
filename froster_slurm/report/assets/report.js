"use strict";
// froster-slurm report: the treemap, the breadcrumb and the sortable table, drawn from the
// data block (gzip + base64 JSON, one array per figure).  Names only ever enter the page
// through textContent: a folder called <script> stays text.
(async function () {
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  let D;
  try {
    const text = atob($("data").textContent.trim());
    const bin = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bin[i] = text.charCodeAt(i);
    const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream("gzip"));
    D = JSON.parse(await new Response(stream).text());
  } catch (e) {
    status.textContent = "Cannot read the report's data in this browser (it needs " +
      "DecompressionStream: Chrome 80+, Firefox 113+, Safari 16.4+): " + e;
    return;
  }
  const N = D.names.length;
  const SVGNS = "http://www.w3.org/2000/svg";
  const DAY = 86400;

  // --- formatting ------------------------------------------------------------------------
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function size(n) {
    let u = 0;
    while (Math.abs(n) >= 1024 && u < UNITS.length - 1) { n /= 1024; u++; }
    return u === 0 ? n.toFixed(0) + " B" : n.toFixed(1) + " " + UNITS[u];
  }
  const num = (n) => n.toLocaleString("en-US");
  function date(t) { return t > 0 ? new Date(t * 1000).toISOString().slice(0, 10) : "-"; }
  function ago(t) {
    if (t <= 0) return "no files";
    const d = (D.now - t) / DAY;
    return d >= 365 ? (d / 365).toFixed(1) + " years ago" : Math.round(d) + " days ago";
  }

  // --- the tree ----------------------------------------------------------------------------
  const kids = new Array(N);
  const tops = [];
  for (let i = 0; i < N; i++) {
    const p = D.parent[i];
    if (p < 0) tops.push(i); else (kids[p] || (kids[p] = [])).push(i);
  }
  const TB = D.total_bytes;
  const byTotal = (a, b) => TB[b] - TB[a];
  tops.sort(byTotal);
  const sorted = new Uint8Array(N);
  function children(i) {
    if (i < 0) return tops;
    const k = kids[i];
    if (!k) return [];
    if (!sorted[i]) { k.sort(byTotal); sorted[i] = 1; }
    return k;
  }
  const pathCache = new Map();
  function pathOf(i) {
    if (i < 0) return "all folders";
    let s = pathCache.get(i);
    if (s !== undefined) return s;
    const p = D.parent[i];
    if (p < 0) s = D.names[i];
    else { const pp = pathOf(p); s = pp + (pp.endsWith("/") ? "" : "/") + D.names[i]; }
    pathCache.set(i, s);
    return s;
  }
  // Newest times over each folder's listed subtree (parents come before their children).
  D.tree_mtime = D.newest_mtime.slice();
  D.tree_atime = D.newest_atime.slice();
  for (let i = N - 1; i >= 0; i--) {
    const p = D.parent[i];
    if (p >= 0) {
      if (D.tree_mtime[i] > D.tree_mtime[p]) D.tree_mtime[p] = D.tree_mtime[i];
      if (D.tree_atime[i] > D.tree_atime[p]) D.tree_atime[p] = D.tree_atime[i];
    }
  }
  const picked = new Uint8Array(N);
  for (const i of D.picked) picked[i] = 1;

  // --- colour by age -----------------------------------------------------------------------
  let basis = "used";
  function treeTime(i) {
    if (basis === "mtime") return D.tree_mtime[i];
    if (basis === "atime") return D.tree_atime[i];
    return Math.max(D.tree_mtime[i], D.tree_atime[i]);
  }
  function ownTime(i) {
    if (basis === "mtime") return D.newest_mtime[i];
    if (basis === "atime") return D.newest_atime[i];
    return Math.max(D.newest_mtime[i], D.newest_atime[i]);
  }
  function colour(t) {
    if (t <= 0) return D.no_files_colour;
    const days = (D.now - t) / DAY;
    for (let k = 0; k < D.buckets.length; k++) {
      if (D.buckets[k] === null || days < D.buckets[k]) return D.colours[k];
    }
    return D.colours[D.colours.length - 1];
  }

  // --- squarified treemap layout -------------------------------------------------------------
  function squarify(areas, x, y, w, h) {
    const out = [];
    let i = 0;
    while (i < areas.length && w > 0.5 && h > 0.5) {
      const side = Math.min(w, h), side2 = side * side;
      let s = areas[i], mx = s, mn = s, j = i + 1;
      let worst = Math.max(side2 * mx / (s * s), (s * s) / (side2 * mn));
      while (j < areas.length) {
        const a = areas[j], s2 = s + a, mx2 = Math.max(mx, a), mn2 = Math.min(mn, a);
        const w2 = Math.max(side2 * mx2 / (s2 * s2), (s2 * s2) / (side2 * mn2));
        if (w2 > worst) break;
        s = s2; mx = mx2; mn = mn2; worst = w2; j++;
      }
      if (w >= h) {
        const cw = s / h; let yy = y;
        for (let k = i; k < j; k++) { const rh = areas[k] / cw; out.push([x, yy, cw, rh]); yy += rh; }
        x += cw; w -= cw;
      } else {
        const rh = s / w; let xx = x;
        for (let k = i; k < j; k++) { const cw = areas[k] / rh; out.push([xx, y, cw, rh]); xx += cw; }
        y += rh; h -= rh;
      }
      i = j;
    }
    return out;
  }

  const MAX_BOXES = 150, MAX_INNER = 40;
  // Items of one level: [value, node index | -2 (files here) | -3 (the rest)].
  function items(node) {
    const list = [];
    let sum = 0, rest = 0, restN = 0;
    for (const c of children(node)) {
      sum += TB[c];
      if (TB[c] <= 0) continue;
      if (list.length < MAX_BOXES) list.push([TB[c], c]); else { rest += TB[c]; restN++; }
    }
    if (restN) list.push([rest, -3, restN]);
    if (node >= 0 && TB[node] - sum > 0) list.push([TB[node] - sum, -2]);
    list.sort((a, b) => b[0] - a[0]);
    return list;
  }
  function el(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, cls) {
    const t = el("text", { x: x, y: y }, parent);
    if (cls) t.setAttribute("class", cls);
    t.textContent = s;
    return t;
  }
  function fit(s, w) {
    const n = Math.floor((w - 6) / 7);
    return n <= 1 ? "" : s.length <= n ? s : s.slice(0, n - 1) + "\u2026";
  }

  const box = $("treemap");
  const tip = $("tip");
  let current = -1;
  function showTip(ev, lines) {
    tip.textContent = "";
    for (const l of lines) { const d = document.createElement("div"); d.textContent = l; tip.appendChild(d); }
    tip.hidden = false;
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 300) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  }
  function describe(i) {
    return [pathOf(i), "subtree " + size(TB[i]) + " in " + num(D.total_files[i]) + " files",
      "own files " + size(D.bytes[i]) + " (" + num(D.files[i]) + ")",
      "last " + (basis === "used" ? "used" : basis) + ": " + ago(treeTime(i)),
      "owner " + D.owners[D.owner[i]] + ", group " + D.groups[D.group[i]] +
      (picked[i] ? "; passes the rules" : "")];
  }

  function draw() {
    const W = box.clientWidth || 1000, H = box.clientHeight || 560;
    box.textContent = "";
    const svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    const list = items(current);
    const total = list.reduce((s, it) => s + it[0], 0);
    if (!total) {
      text(svg, 10, 24, "nothing below " + pathOf(current) + " holds data");
      box.appendChild(svg);
      return;
    }
    const scale = (W * H) / total;
    const rects = squarify(list.map((it) => it[0] * scale), 0, 0, W, H);
    rects.forEach((r, k) => {
      const [x, y, w, h] = r, it = list[k], i = it[1];
      const g = el("g", { class: "node" }, svg);
      const fill = i >= 0 ? colour(treeTime(i)) : i === -2 ? colour(ownTime(current)) : "#ddd";
      el("rect", { class: "box", x: x, y: y, width: Math.max(0, w), height: Math.max(0, h),
        fill: fill, "fill-opacity": i === -2 ? 0.55 : 1 }, g);
      let label;
      if (i >= 0) label = D.names[i];
      else if (i === -2) label = "files directly in " + D.names[current];
      else label = num(it[2]) + " smaller folders";
      if (i >= 0 && kids[i] && w > 40 && h > 40) {
        const inner = [];
        let s = 0;
        for (const c of children(i)) {
          if (inner.length >= MAX_INNER || TB[c] <= 0) break;
          inner.push(c); s += TB[c];
        }
        const iw = w - 4, ih = h - 20;
        if (inner.length && iw > 4 && ih > 4) {
          const sc = (iw * ih) / Math.max(TB[i], s);
          squarify(inner.map((c) => TB[c] * sc), x + 2, y + 18, iw, ih).forEach((q, m) => {
            el("rect", { class: "inner", x: q[0], y: q[1], width: Math.max(0, q[2]),
              height: Math.max(0, q[3]), fill: colour(treeTime(inner[m])) }, g);
          });
        }
      }
      if (w > 30 && h > 14) {
        text(g, x + 4, y + 13, fit(label, w));
        if (h > 30 && w > 50) text(g, x + 4, y + 27, fit(size(it[0]), w), "sz");
      }
      g.addEventListener("mousemove", (ev) => showTip(ev, i >= 0 ? describe(i) : [label, size(it[0])]));
      g.addEventListener("mouseleave", () => { tip.hidden = true; });
      if (i >= 0) g.addEventListener("click", () => { tip.hidden = true; go(i); });
    });
    box.appendChild(svg);
  }

  const crumbs = $("crumbs");
  function drawCrumbs() {
    crumbs.textContent = "";
    const chain = [];
    for (let i = current; i >= 0; i = D.parent[i]) chain.push(i);
    chain.push(-1);
    chain.reverse();
    chain.forEach((i, k) => {
      if (k) { const s = document.createElement("span"); s.className = "sep"; s.textContent = "/"; crumbs.appendChild(s); }
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = i < 0 ? "all folders" : D.names[i];
      b.addEventListener("click", () => go(i));
      crumbs.appendChild(b);
    });
    const s = document.createElement("span");
    s.className = "sep";
    s.textContent = "  " + size(current < 0 ? tops.reduce((a, c) => a + TB[c], 0) : TB[current]);
    crumbs.appendChild(s);
  }
  function go(i) {
    // A folder with nothing listed below it is shown inside its parent.
    if (i >= 0 && !kids[i]) i = D.parent[i];
    current = i;
    drawCrumbs();
    draw();
  }
  document.addEventListener("keydown", (ev) => {
    if ((ev.key === "Escape" || ev.key === "Backspace") && current >= 0 &&
        !(ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement)) {
      go(D.parent[current]);
    }
  });
  let resizeTimer = 0;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(draw, 150); });

  // --- age basis -----------------------------------------------------------------------------
  for (const r of document.querySelectorAll("input[name=basis]")) {
    r.addEventListener("change", () => {
      basis = r.value;
      for (const c of document.querySelectorAll(".age-chart")) c.hidden = c.dataset.basis !== basis;
      for (const s of document.querySelectorAll(".basis-name")) s.textContent = D.basis_labels[basis];
      draw();
    });
  }

  // --- the table -----------------------------------------------------------------------------
  const tbody = document.querySelector("#folders tbody");
  const heads = document.querySelectorAll("#folders th");
  // The columns of hotspots.csv after the folder, in its order.
  const COLUMNS = ["bytes", "files", "total_bytes", "total_files", "allocated_bytes",
    "avg_file_bytes", "newest_mtime", "newest_atime", "owner", "group", "depth"];
  const SIZES = new Set(["bytes", "total_bytes", "allocated_bytes", "avg_file_bytes"]);
  let sortKey = D.rank_by === "total" ? "total_bytes" : "bytes", sortDesc = true;
  let order = null;
  function sortOrder() {
    const idx = Array.from({ length: N }, (_, i) => i);
    let cmp;
    if (sortKey === "folder") {
      const p = idx.map(pathOf);
      cmp = (a, b) => (p[a] < p[b] ? -1 : p[a] > p[b] ? 1 : 0);
    } else if (sortKey === "owner" || sortKey === "group") {
      const col = D[sortKey], names = sortKey === "owner" ? D.owners : D.groups;
      cmp = (a, b) => { const x = names[col[a]], y = names[col[b]]; return x < y ? -1 : x > y ? 1 : TB[b] - TB[a]; };
    } else if (sortKey === "picked") {
      cmp = (a, b) => picked[a] - picked[b] || D.bytes[a] - D.bytes[b];
    } else {
      const col = D[sortKey];
      cmp = (a, b) => col[a] - col[b];
    }
    idx.sort(sortDesc ? (a, b) => cmp(b, a) : cmp);  // stable: ties keep path order
    return idx;
  }
  function cell(tr, s, cls, title) {
    const td = document.createElement("td");
    td.textContent = s;
    if (cls) td.className = cls;
    if (title) td.title = title;
    tr.appendChild(td);
    return td;
  }
  function drawTable() {
    if (!order) order = sortOrder();
    const limit = Math.min(N, parseInt($("limit").value, 10) || 200);
    const exact = $("exact").checked;
    const frag = document.createDocumentFragment();
    for (let k = 0; k < limit; k++) {
      const i = order[k];
      const tr = document.createElement("tr");
      const p = cell(tr, pathOf(i), "path", "show in the treemap");
      p.addEventListener("click", () => { go(i); $("tree").scrollIntoView(); });
      for (const key of COLUMNS) {
        const v = D[key][i];
        let s, cls = "num";
        if (key === "owner" || key === "group") { s = (key === "owner" ? D.owners : D.groups)[v]; cls = ""; }
        else if (exact) s = String(v);
        else if (SIZES.has(key)) s = size(v);
        else if (key === "newest_mtime" || key === "newest_atime") s = date(v);
        else s = num(v);
        cell(tr, s, cls, exact || !cls ? "" : String(v));
      }
      cell(tr, picked[i] ? "\u2713" : "");
      frag.appendChild(tr);
    }
    tbody.textContent = "";
    tbody.appendChild(frag);
    $("count").textContent = "showing " + num(limit) + " of " + num(N) + " folders, " +
      "sorted by " + sortKey + (sortDesc ? " (largest first)" : " (smallest first)");
    for (const h of heads) {
      h.classList.toggle("sorted-desc", h.dataset.key === sortKey && sortDesc);
      h.classList.toggle("sorted-asc", h.dataset.key === sortKey && !sortDesc);
    }
  }
  for (const h of heads) {
    h.addEventListener("click", () => {
      const key = h.dataset.key;
      if (key === sortKey) sortDesc = !sortDesc;
      else { sortKey = key; sortDesc = key !== "folder" && key !== "owner" && key !== "group"; }
      order = null;
      drawTable();
    });
  }
  $("limit").addEventListener("change", drawTable);
  $("exact").addEventListener("change", drawTable);

  go(tops.length === 1 && kids[tops[0]] ? tops[0] : -1);
  drawTable();
  const ms = performance.now();
  document.body.dataset.renderedMs = ms.toFixed(0);
  status.textContent = "Drawn " + ms.toFixed(0) + " ms after the page started loading; " +
    num(N) + " folders. Made by froster-slurm report.";
})();

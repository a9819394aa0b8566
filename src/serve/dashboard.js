// perps-news dashboard: the hottest active stories, live from /api/events.
// Text is always set with textContent, never parsed as HTML.
"use strict";

(function () {
  const MAX_ROWS = 50;
  const PER_PAGE = 200;
  const stories = new Map(); // id -> story record (as /api/stories returns it)
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let refreshTimer = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function age(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return "";
    let s = Math.max(0, Math.round((Date.now() - t) / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60);
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    return m + "m";
  }

  function filterSymbol() {
    return $("symbol").value.trim().toUpperCase();
  }

  function render() {
    const want = filterSymbol();
    const active = [...stories.values()]
      .filter((s) => s.active !== false)
      .sort((a, b) => (b.heat || 0) - (a.heat || 0))
      .slice(0, MAX_ROWS);
    const rows = $("rows");
    rows.replaceChildren();
    const symbols = new Set();
    let shown = 0;
    for (const s of active) {
      (s.symbols || []).forEach((x) => symbols.add(x));
      const tr = el("tr");
      tr.dataset.storyId = s.id;
      tr.dataset.symbols = (s.symbols || []).join(" ");
      if (s.breaking) tr.classList.add("breaking");
      const hidden = want !== "" && !(s.symbols || []).map((x) => x.toUpperCase()).includes(want);
      if (hidden) tr.classList.add("hidden"); else shown++;
      tr.append(el("td", "heat", (s.heat || 0).toFixed(2)));
      tr.append(el("td", "importance", String(Math.round(s.importance || 0))));
      tr.append(el("td", "label", s.label || s.id));
      const sym = el("td", "symbols");
      (s.symbols || []).forEach((x) => sym.append(el("span", "symbol", x)));
      tr.append(sym);
      tr.append(el("td", "sources", String(s.sources ?? "")));
      const br = el("td", "breaking");
      if (s.breaking) br.append(el("span", "badge", "breaking"));
      tr.append(br);
      const ageCell = el("td", "age", age(s.first_published_at));
      ageCell.title = (s.first_published_at || "") + " to " + (s.last_published_at || "");
      tr.append(ageCell);
      // The latest articles first, each its title linking to the article (http(s) only);
      // records from before member articles show their ids.
      const arts = el("td", "articles");
      const members = (s.members || []).slice().reverse();
      const items = members.length ? members : (s.articles || []).map((id) => ({ id, title: id }));
      for (const a of items.slice(0, 5)) {
        if (/^https?:\/\//i.test(a.url || "")) {
          const link = el("a", "", a.title || a.id);
          link.href = a.url;
          link.rel = "noopener noreferrer";
          link.target = "_blank";
          if (a.source) link.title = a.source;
          arts.append(link);
        } else {
          arts.append(el("span", "", a.title || a.id));
        }
      }
      const total = members.length ? (s.size || members.length) : (s.articles || []).length;
      if (total > 5) arts.append(el("span", "", "+" + (total - 5) + " more"));
      tr.append(arts);
      rows.append(tr);
    }
    $("empty").classList.toggle("hidden", shown > 0);
    const list = $("symbols");
    list.replaceChildren(...[...symbols].sort().map((x) => { const o = el("option"); o.value = x; return o; }));
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  async function refresh() {
    try {
      const r = await fetch("/api/stories?page=1&per_page=" + PER_PAGE, { headers, cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const page = await r.json();
      for (const s of page.stories || []) {
        stories.set(s.id, s);
      }
      render();
    } catch (e) {
      $("updated").textContent = "stories not loaded: " + e.message;
    }
  }

  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 300);
  }

  // A news:story event carries the story's summary fields: shown at once (a closed story
  // leaves the table), completed (member articles) by the next /api/stories read.
  function onStory(ev) {
    let p;
    try { p = JSON.parse(ev.data); } catch (_) { return; }
    if (!p || !p.storyId) return;
    const old = stories.get(p.storyId) || {};
    stories.set(p.storyId, Object.assign({}, old, {
      id: p.storyId,
      label: p.label,
      symbols: p.symbols || [],
      heat: p.heat,
      sources: p.sources,
      breaking: p.breaking,
      size: p.size,
      importance: p.importance,
      first_published_at: p.firstSeen,
      last_published_at: p.lastSeen,
      active: p.active !== false,
      articles: old.articles || [],
      members: old.members || [],
    }));
    render();
    refreshSoon();
  }

  function connect() {
    const url = "/api/events" + (token ? "?access_token=" + encodeURIComponent(token) : "");
    const es = new EventSource(url);
    es.onopen = () => { $("status").textContent = "live"; $("status").dataset.state = "live"; };
    es.onerror = () => { $("status").textContent = "reconnecting"; $("status").dataset.state = "reconnecting"; };
    es.addEventListener("news:story", onStory);
    es.addEventListener("news:clustered", refreshSoon);
  }

  function start() {
    $("symbol").addEventListener("input", render);
    refresh();
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

// groundskeeper dashboard: live updates and operator actions. Hand-written,
// no library, nothing fetched from elsewhere.
"use strict";

// refresh re-renders the page's <main> from the server, keeping what the
// user is typing.
let refreshing = false, again = false;
async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    const active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "SELECT")) return;
    const r = await fetch(location.href, { headers: { "Accept": "text/html" } });
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.getElementById("main");
    if (fresh) { document.getElementById("main").replaceWith(fresh); bind(); }
  } catch (e) { /* the next event retries */ } finally {
    refreshing = false;
    if (again) { again = false; refresh(); }
  }
}

function flash(msg) {
  const f = document.getElementById("flash");
  f.textContent = msg; f.hidden = !msg;
}

async function post(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const j = await r.json().catch(() => ({}));
  flash(r.ok ? "Done." : (j.error || ("HTTP " + r.status)));
  refresh();
}

function bind() {
  document.querySelectorAll("button[data-post]").forEach(b => b.onclick = () => {
    const body = {};
    if (b.dataset.reason) { const i = document.querySelector(b.dataset.reason); if (i) body.reason = i.value; }
    post(b.dataset.post, body);
  });
  document.querySelectorAll("form[data-post]").forEach(f => f.onsubmit = ev => {
    ev.preventDefault();
    const body = {};
    new FormData(f).forEach((v, k) => { if (v !== "") body[k] = k === "volume_id" ? Number(v) : v; });
    post(f.dataset.post, body);
  });
  const go = document.getElementById("volume-open");
  if (go) go.onclick = () => { const v = document.getElementById("volume-go").value.trim(); if (v) location.href = "/volumes/" + encodeURIComponent(v); };
}

function live() {
  const dot = document.getElementById("live");
  const es = new EventSource("/api/v1/events");
  let first = true;
  es.addEventListener("change", () => {
    dot.classList.add("on");
    if (first) { first = false; return; }
    refresh();
  });
  es.onerror = () => dot.classList.remove("on");
}

document.addEventListener("DOMContentLoaded", () => { bind(); live(); });

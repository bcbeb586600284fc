// The status page: reads /status/events (server-sent events over fetch, so
// that a bearer token can go in the Authorization header, never in the
// URL) and redraws. Everything shown is set as text, never as HTML: tool
// and server names come from servers.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const num = (x, digits) => (x === undefined || x === null ? "" : Number(x).toFixed(digits));
const short = (d) => (d ? d.replace(/^sha256:/, "").slice(0, 12) : "");

function setConn(state, text) {
  const c = $("conn");
  c.dataset.conn = state;
  c.textContent = text;
}

function rate(r) {
  if (!r || !r.window) return "–";
  return num(r.rate, 1) + "/s";
}

function renderGateway(g) {
  const sec = el("div", { class: "gateway", "data-gateway": g.name });
  sec.append(el("h2", {}, g.name, el("span", { class: "state", "data-state": g.state || "unknown" }, g.state || "unknown")));
  const facts = el("div", { class: "facts" });
  const fact = (label, value) => facts.append(el("span", {}, el("b", {}, label + " "), value));
  fact("tools", g.tools);
  fact("calls", rate(g.calls));
  fact("errors", g.calls && g.calls.window ? num(g.calls.errorRate, 1) + "/s" : "–");
  fact("latency", g.calls && g.calls.window && g.calls.rate ? num(g.calls.latencyMs, 1) + " ms" : "–");
  fact("total", (g.calls ? g.calls.requests : 0) + " calls, " + (g.calls ? g.calls.errors : 0) + " errors, " + (g.calls ? g.calls.shed : 0) + " shed");
  if (g.version) fact("version", g.version);
  for (const [kind, digest] of Object.entries(g.policies || {})) {
    facts.append(el("span", { "data-policy": kind }, el("b", {}, kind + " "), el("code", { title: digest }, short(digest))));
  }
  sec.append(facts);

  const tbody = el("tbody");
  for (const s of g.servers || []) {
    const tr = el("tr", { "data-server": s.name || "" });
    tr.append(
      el("td", {}, s.name || "(unattributed)"),
      el("td", { class: "state", "data-state": s.state || "" }, s.state || ""),
      el("td", { class: "num" }, s.pid || ""),
      el("td", { class: "num" }, s.failures || 0),
      el("td", { class: "num" }, s.restarts || 0),
      el("td", { class: "tools" }, (s.tools || []).join(" ")),
      el("td", { class: "muted" }, s.lastError || s.listError || ""),
    );
    tbody.append(tr);
  }
  const head = el("tr", {}, ...["server", "state", "pid", "failures", "restarts", "tools", "error"].map((h) => el("th", {}, h)));
  sec.append(el("table", { class: "servers" }, el("thead", {}, head), tbody));

  const eps = (g.endpoints || []).filter((e) => e.requests || e.shed);
  if (eps.length) {
    const eb = el("tbody");
    for (const e of eps) {
      eb.append(el("tr", { "data-endpoint": e.name },
        el("td", {}, el("code", {}, e.name)), el("td", { class: "num" }, rate(e)),
        el("td", { class: "num" }, e.window && e.rate ? num(e.latencyMs, 1) : "–"),
        el("td", { class: "num" }, num(e.avgLatencyMs, 1)),
        el("td", { class: "num" }, e.requests), el("td", { class: "num" }, e.errors), el("td", { class: "num" }, e.shed)));
    }
    const eh = el("tr", {}, ...["endpoint", "rate", "latency ms", "avg ms", "requests", "errors", "shed"].map((h) => el("th", {}, h)));
    sec.append(el("details", {}, el("summary", {}, "endpoints"), el("table", {}, el("thead", {}, eh), eb)));
  }
  return sec;
}

function render(snap) {
  const gws = $("gateways");
  gws.replaceChildren(...(snap.gateways.length ? snap.gateways.map(renderGateway)
    : [el("p", { class: "muted" }, "No gateway on " + snap.prefix + " yet.")]));
  const a = snap.audit || { events: 0, denials: 0, recent: [] };
  const table = $("denials");
  if (!a.events) {
    $("audit-summary").textContent = "No audit events.";
    table.hidden = true;
  } else {
    $("audit-summary").textContent = a.events + " audit events, " + a.denials + " denials.";
    table.hidden = !a.recent.length;
    table.tBodies[0].replaceChildren(...a.recent.map((d) => el("tr", {},
      el("td", {}, new Date(d.time).toLocaleTimeString()), el("td", {}, d.gateway), el("td", {}, d.principal),
      el("td", {}, el("code", {}, d.tool)), el("td", {}, d.reason || ""), el("td", {}, el("code", { title: d.policy || "" }, short(d.policy))))));
  }
  $("updated").textContent = "as of " + new Date(snap.time).toLocaleTimeString();
  document.body.dataset.updated = snap.time;
}

async function follow() {
  const headers = {};
  const token = sessionStorage.getItem("gw-token");
  if (token) headers.Authorization = "Bearer " + token;
  let res;
  try {
    res = await fetch("/status/events", { headers, cache: "no-store" });
  } catch (e) {
    setConn("down", "disconnected");
    return setTimeout(follow, 2000);
  }
  if (res.status === 401) {
    setConn("down", "token needed");
    $("auth").hidden = false;
    return;
  }
  if (!res.ok || !res.body) {
    setConn("down", "error " + res.status);
    return setTimeout(follow, 2000);
  }
  setConn("live", "live");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      break;
    }
    if (chunk.done) break;
    buf += chunk.value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) render(JSON.parse(data));
    }
  }
  setConn("down", "disconnected");
  setTimeout(follow, 1000);
}

$("auth").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("gw-token", $("token").value.trim());
  $("auth").hidden = true;
  follow();
});

follow();

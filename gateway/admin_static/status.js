// The admin's status page: fetches the JSON endpoints every 2 s and redraws.
// Builds the DOM with text nodes only (names come from configs and control
// planes), so nothing fetched is ever parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
let refreshes = 0;

async function fetchJson(path) {
  const reply = await fetch(path, { cache: "no-store" });
  // /ready answers 503 with its reasons while the gateway is not ready.
  if (!reply.ok && reply.status !== 503) {
    throw new Error(`${path}: HTTP ${reply.status}`);
  }
  return reply.json();
}

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function table(headers, rows) {
  const head = el("tr", null, ...headers.map((h) => el("th", null, h)));
  const body = rows.map((cells) => el("tr", null, ...cells.map((c) => el("td", null, c))));
  return el("table", null, el("thead", null, head), el("tbody", null, ...body));
}

function lines(items) {
  const box = el("div", "mono");
  items.forEach((item, i) => {
    if (i > 0) box.append(el("br"));
    box.append(item);
  });
  return box;
}

function yesNo(value) {
  return el("span", value ? "yes" : "no", value ? "yes" : "no");
}

function healthWord(endpoint) {
  if (endpoint.ejected) return "ejected";
  if (endpoint.active_health === "unhealthy") return "unhealthy";
  return endpoint.health || "unknown";
}

function renderGateway(version, ready) {
  const started = version.started ? new Date(version.started * 1000).toISOString() : "?";
  const readiness = ready.ready ? el("span", "yes", "ready") : el("span", "no", `not ready: ${ready.reason}`);
  const summary = table(
    ["version", "python", "config hash", "started", "workers", "readiness"],
    [[`meshgate ${version.meshgate}`, version.python, el("code", null, (version.config_hash || "").slice(0, 12)),
      started, version.worker_count, readiness]],
  );
  const workers = table(
    ["worker", "pid", "started", "state"],
    version.workers.map((w) => [
      w.worker + 1, w.pid ?? "-",
      w.started ? new Date(w.started * 1000).toISOString() : "-",
      w.error ? el("span", "no", w.error) : el("span", "yes", "answering"),
    ]),
  );
  return [summary, workers];
}

function renderListeners(routes) {
  const out = [];
  for (const [name, listener] of Object.entries(routes)) {
    const filters = listener.filters.length ? listener.filters.join(", ") : "none";
    out.push(el("h3", null, `listener ${name} on ${listener.address} (filters: ${filters})`));
    out.push(table(
      ["#", "route", "match", "kind", "cluster", "REST bindings"],
      listener.routes.map((r, i) => [
        i + 1, r.name, el("code", null, r.match), r.kind, r.cluster,
        lines(r.bindings.map((b) => `${b.http} → ${b.rpc}`)),
      ]),
    ));
    for (const exposure of listener.exposed) {
      out.push(table(
        ["exposed path", "cluster"],
        exposure.map((e) => [el("code", null, e.path), e.cluster ?? ""]),
      ));
    }
  }
  return out.length ? out : [el("p", null, "no listeners")];
}

function renderClusters(clusters) {
  const rows = [];
  for (const source of ["static", "registry", "xds"]) {
    for (const [name, cluster] of Object.entries(clusters[source] || {})) {
      const endpoints = cluster.endpoints.length ? cluster.endpoints : [null];
      endpoints.forEach((e, i) => {
        const first = i === 0;
        const word = e ? healthWord(e) : "";
        rows.push([
          first ? name : "", first ? source : "", first ? (cluster.lb || cluster.lb_policy) : "",
          first ? cluster.in_flight : "",
          e ? el("code", null, e.address) : "no endpoints",
          e ? e.weight : "",
          e ? el("span", `health health-${word}`, word) : "",
          e && e.ejections !== undefined ? e.ejections : "",
          e && e.ejected_in_workers && e.ejected_in_workers.length
            ? e.ejected_in_workers.map((w) => w + 1).join(", ") : "",
        ]);
      });
    }
  }
  if (!rows.length) return [el("p", null, "no clusters")];
  return [table(
    ["cluster", "source", "lb", "in flight", "endpoint", "weight", "health", "ejections", "ejected in workers"],
    rows,
  )];
}

function renderXds(dump) {
  if (!dump.xds) return [el("p", null, "xDS: not configured (no mesh.xds in the config)")];
  const workers = table(
    ["worker", "pid", "connected", "ACKed versions"],
    dump.workers.map((w) => [
      w.worker + 1, w.pid ?? "-",
      w.xds ? yesNo(w.xds.connected) : (w.error || "-"),
      w.xds ? lines(Object.entries(w.xds.acks).map(([type, ack]) =>
        `${type} ${ack.version || "-"}${ack.error ? " NACK: " + ack.error : ""}`)) : "",
    ]),
  );
  const resources = table(
    ["type", "name", "version", "state"],
    dump.xds.resources.map((r) => [r.type, el("code", null, r.name), r.version || "-",
      r.error ? `${r.state}: ${r.error}` : r.state]),
  );
  return [workers, resources];
}

function show(id, nodes) {
  document.getElementById(id).replaceChildren(...nodes);
}

async function refresh() {
  const problem = document.getElementById("problem");
  try {
    const [version, ready, routes, clusters, dump] = await Promise.all(
      ["/version", "/ready?verbose", "/routes", "/clusters", "/config_dump"].map(fetchJson),
    );
    show("gateway", renderGateway(version, ready));
    show("listeners", renderListeners(routes));
    show("clusters", renderClusters(clusters));
    show("xds", renderXds(dump));
    refreshes += 1;
    const stamp = document.getElementById("refreshed");
    stamp.dataset.refreshes = String(refreshes);
    stamp.textContent = `refreshed ${new Date().toLocaleTimeString()} (every ${REFRESH_MS / 1000} s)`;
    problem.hidden = true;
  } catch (error) {
    problem.textContent = `refresh failed: ${error.message}`;
    problem.hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();

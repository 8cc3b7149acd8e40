// The tracing UI: polls the proxy's program API and draws what trace.js computes.
import { timeline, layers, cachedShare, seconds, callLabel, nodeKind } from "./trace.js";

const API = "../v1/programs";
const SVG = "http://www.w3.org/2000/svg";
let selected = new URLSearchParams(location.search).get("program");

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

function el(tag, attrs = {}, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function renderList(list) {
  document.getElementById("policy").textContent = `policy ${list.policy}`;
  const s = list.stats;
  const pool = s.admission
    ? `; admission pool ${s.admission.used_tokens} of ${s.admission.capacity_tokens} tokens, ${s.admission.active} active, ${s.admission.parked} parked`
    : "";
  document.getElementById("stats").textContent =
    `${s.programs} programs, ${s.queued} queued, ${s.inflight} at the engine, ${s.pins.live} pins (${s.pins.pinned_tokens} tokens)${pool}`;
  const rows = document.getElementById("rows");
  rows.replaceChildren(
    ...list.data.map((p) => {
      const tr = el("tr", p.program_id === selected ? { class: "selected" } : {});
      const share = cachedShare(p);
      const cells = [
        p.program_id,
        p.status,
        String(p.calls),
        p.agents.join(", "),
        share == null ? "-" : `${Math.round(share * 100)}%`,
        p.pinned_tokens ? `${p.pinned_tokens} (${seconds(p.pin_expires_in_s)})` : "",
        admissionCell(p),
        seconds(p.service_s),
      ];
      cells.forEach((c, i) => tr.append(el("td", i === 1 ? { class: `status-${c}` } : {}, c)));
      tr.addEventListener("click", () => select(p.program_id));
      return tr;
    })
  );
}

function admissionCell(p) {
  if (p.admission === "active") return `active, ${p.footprint_tokens} tokens`;
  return p.admission || "";
}

function renderTimeline(program, now) {
  const svg = document.getElementById("timeline");
  const t = timeline(program, now);
  const width = svg.clientWidth || 800, left = 90, row = 22;
  const scale = (width - left - 10) / Math.max(t.end, 1e-3);
  svg.setAttribute("height", String(row * t.lanes.length + 24));
  svg.replaceChildren();
  t.lanes.forEach((lane, i) => svg.append(el("svg:text", { x: 4, y: row * i + 15 }, lane)));
  for (const item of t.items) {
    const rect = el("svg:rect", {
      x: left + item.start * scale,
      y: row * item.lane + 4,
      width: Math.max(1, (item.end - item.start) * scale),
      height: row - 8,
      class: item.kind,
    });
    rect.append(el("svg:title", {}, `${item.kind} ${seconds(item.end - item.start)} ${item.label}`));
    svg.append(rect);
  }
  svg.append(el("svg:text", { x: left, y: row * t.lanes.length + 18 }, "0"));
  svg.append(el("svg:text", { x: width - 60, y: row * t.lanes.length + 18 }, seconds(t.end)));
}

function renderGraph(program) {
  const svg = document.getElementById("graph");
  const graph = program.graph;
  const { rows, position } = layers(graph);
  const dx = 130, dy = 46, w = 110, h = 26;
  const widest = Math.max(1, ...rows.map((r) => r.length));
  svg.setAttribute("height", String(rows.length * dy + 10));
  svg.setAttribute("viewBox", `0 0 ${widest * dx + 10} ${rows.length * dy + 10}`);
  svg.replaceChildren();
  const at = (id) => {
    const p = position.get(id);
    return { x: 5 + p.index * dx, y: 5 + p.layer * dy };
  };
  for (const e of graph.edges || graph.links || []) {
    const a = at(e.source), b = at(e.target);
    svg.append(el("svg:path", { class: "edge", d: `M${a.x + w / 2},${a.y + h} L${b.x + w / 2},${b.y}` }));
  }
  for (const node of graph.nodes) {
    const p = at(node.id);
    const kind = nodeKind(node);
    const g = el("svg:g");
    g.append(el("svg:rect", { x: p.x, y: p.y, width: w, height: h, rx: 4, class: kind }));
    const text = node.kind === "tool" ? (node.tools || []).join(", ") : node.agent || node.step || node.id;
    g.append(el("svg:text", { x: p.x + 4, y: p.y + 17 }, text.slice(0, 16)));
    g.append(el("svg:title", {}, node.kind === "tool" ? `${text}: ${seconds(node.duration_s)}` : `${node.id}: ${callLabel(node)}`));
    svg.append(g);
  }
}

function renderOutlook(program) {
  const p = program.prediction;
  const out = document.getElementById("outlook");
  if (program.status === "done") {
    out.textContent = "Done: nothing left to predict.";
    return;
  }
  if (!p || p.remaining_calls.samples === 0) {
    out.textContent = "No prediction yet: no program of its workflow has finished.";
    return;
  }
  const next = p.next_agents.map((n) => `${n.agent} ${Math.round(n.probability * 100)}%`).join(", ");
  out.textContent =
    `workflow ${p.workflow}; next: ${next || "-"}; about ${p.remaining_calls.mean.toFixed(1)} calls ` +
    `and ${seconds(p.remaining_time_s.mean)} left (engine ${seconds(p.remaining_service_s.mean)})`;
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const list = await getJson(API);
    renderList(list);
    if (selected) {
      const program = await getJson(`${API}/${encodeURIComponent(selected)}`).catch(() => null);
      document.getElementById("detail").hidden = program == null;
      if (program) {
        document.getElementById("title").textContent = `${program.program_id} (${program.status})`;
        renderOutlook(program);
        renderTimeline(program, program.now ?? list.now);
        renderGraph(program);
      }
    }
    error.textContent = "";
  } catch (e) {
    error.textContent = String(e.message || e);
  }
}

function select(id) {
  selected = id;
  history.replaceState(null, "", `?program=${encodeURIComponent(id)}`);
  refresh();
}

refresh();
setInterval(() => {
  if (document.getElementById("live").checked) refresh();
}, 1000);

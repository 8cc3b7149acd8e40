// Pure functions from the proxy's program views to what the tracing UI draws.
// No DOM here, so that node can test them (tests/ui/trace.test.mjs).

// Lanes and bars of one program's timeline, in seconds since its arrival.
// A call is a "queued" bar (waiting in the proxy) then a "running" bar (at the engine);
// a tool pause is a "tool" bar; a live pin is a "pin" band from now to its expiry.
export function timeline(program, now) {
  const t0 = program.arrival;
  const nodes = program.graph ? program.graph.nodes : [];
  const lanes = [];
  const laneOf = (name) => {
    let i = lanes.indexOf(name);
    if (i < 0) {
      lanes.push(name);
      i = lanes.length - 1;
    }
    return i;
  };
  const items = [];
  for (const node of nodes) {
    if (node.kind === "call") {
      items.push(...callBars(node, laneOf(node.agent || "calls"), t0, now));
    } else if (node.kind === "tool" && node.started_at != null) {
      const start = node.started_at - t0;
      items.push({
        lane: laneOf("tools"),
        kind: "tool",
        start,
        end: start + (node.duration_s || 0),
        label: (node.tools || []).join(", ") || "tool",
        node: node.id,
      });
    }
  }
  if (program.pinned_tokens > 0 && program.pin_expires_in_s != null) {
    items.push({
      lane: laneOf("KV pin"),
      kind: "pin",
      start: now - t0,
      end: now - t0 + program.pin_expires_in_s,
      label: `${program.pinned_tokens || 0} tokens`,
      node: null,
    });
  }
  const end = Math.max(now - t0, ...items.map((i) => i.end), 0);
  return { lanes, items, start: 0, end };
}

function callBars(node, lane, t0, now) {
  const bars = [];
  const queued = node.queued_at != null ? node.queued_at - t0 : null;
  const started = node.started_at != null ? node.started_at - t0 : null;
  const finished = node.finished_at != null ? node.finished_at - t0 : null;
  if (queued != null) {
    bars.push({ lane, kind: "queued", start: queued, end: started ?? now - t0, label: "", node: node.id });
  }
  if (started != null) {
    bars.push({ lane, kind: nodeKind(node), start: started, end: finished ?? now - t0, label: callLabel(node), node: node.id });
  }
  return bars;
}

// The colour class of a graph node: a tool pause, or a call by its state (a call that
// failed or was cancelled is "failed").
export function nodeKind(node) {
  if (node.kind === "tool") return "tool";
  return ["queued", "running", "done"].includes(node.status) ? node.status : "failed";
}

export function callLabel(node) {
  if (node.prompt_tokens == null) return node.step || "";
  const cached = node.cached_tokens || 0;
  return `${node.prompt_tokens} in (${cached} cached), ${node.completion_tokens || 0} out`;
}

// Layers of a node-link graph: each node one layer below its deepest parent, so that
// edges point down; within a layer, nodes keep their order in the view.
export function layers(graph) {
  const ids = graph.nodes.map((n) => n.id);
  const parents = new Map(ids.map((id) => [id, []]));
  for (const e of graph.edges || graph.links || []) {
    if (parents.has(e.target)) parents.get(e.target).push(e.source);
  }
  const depth = new Map();
  const visit = (id, seen) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0; // a cycle: never in an execution graph, but do not loop
    seen.add(id);
    const ps = parents.get(id) || [];
    const d = ps.length ? 1 + Math.max(...ps.map((p) => visit(p, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  ids.forEach((id) => visit(id, new Set()));
  const rows = [];
  for (const id of ids) {
    const d = depth.get(id);
    while (rows.length <= d) rows.push([]);
    rows[d].push(id);
  }
  const position = new Map();
  rows.forEach((row, layer) => row.forEach((id, index) => position.set(id, { layer, index })));
  return { rows, position };
}

// Share of prompt tokens served from cache, 0..1 (null before any call finished).
export function cachedShare(program) {
  return program.prompt_tokens ? program.cached_tokens / program.prompt_tokens : null;
}

export function seconds(s) {
  if (s == null || Number.isNaN(s)) return "-";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${(s / 60).toFixed(1)} min`;
}

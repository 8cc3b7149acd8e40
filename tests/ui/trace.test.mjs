// Unit tests of the tracing UI's pure functions: node --test tests/ui/
// (tests/service/test_ui.py runs them, and feeds them a program view from a live proxy).
import { test } from "node:test";
import assert from "node:assert/strict";
import { timeline, layers, cachedShare, seconds, nodeKind } from "../../middleware/service/ui/trace.js";

const program = {
  arrival: 100,
  prompt_tokens: 300,
  cached_tokens: 150,
  pinned_tokens: 120,
  pin_expires_in_s: 5,
  graph: {
    nodes: [
      { id: "call:a", kind: "call", agent: "coder", status: "done", queued_at: 100, started_at: 101, finished_at: 103, prompt_tokens: 100, cached_tokens: 0, completion_tokens: 20 },
      { id: "tool:1", kind: "tool", tools: ["bash"], started_at: 103, duration_s: 2 },
      { id: "call:b", kind: "call", agent: "coder", status: "running", queued_at: 105, started_at: 106 },
      { id: "call:c", kind: "call", agent: "tester", status: "queued", queued_at: 107 },
    ],
    edges: [
      { source: "call:a", target: "tool:1" },
      { source: "tool:1", target: "call:b" },
      { source: "call:a", target: "call:c" },
    ],
  },
};

test("calls become queued then running bars, per agent lane, in seconds since arrival", () => {
  const t = timeline(program, 110);
  assert.deepEqual(t.lanes, ["coder", "tools", "tester", "KV pin"]);
  const bars = t.items.map((i) => [t.lanes[i.lane], i.kind, i.start, i.end]);
  assert.deepEqual(bars, [
    ["coder", "queued", 0, 1],
    ["coder", "done", 1, 3],
    ["tools", "tool", 3, 5],
    ["coder", "queued", 5, 6],
    ["coder", "running", 6, 10], // still running: up to now
    ["tester", "queued", 7, 10], // still waiting: up to now
    ["KV pin", "pin", 10, 15],
  ]);
  assert.equal(t.end, 15);
  assert.match(t.items[1].label, /100 in \(0 cached\), 20 out/);
});

test("no pin band without pinned tokens, and an empty graph draws nothing", () => {
  const t = timeline({ ...program, pinned_tokens: 0 }, 110);
  assert.ok(!t.lanes.includes("KV pin"));
  assert.deepEqual(timeline({ arrival: 5, graph: { nodes: [], edges: [] } }, 7), {
    lanes: [], items: [], start: 0, end: 2,
  });
});

test("layers put every node below its deepest parent", () => {
  const { rows, position } = layers(program.graph);
  assert.deepEqual(rows, [["call:a"], ["tool:1", "call:c"], ["call:b"]]);
  assert.deepEqual(position.get("call:b"), { layer: 2, index: 0 });
  // A join sits below the deeper of its parents.
  const join = layers({
    nodes: [{ id: "r" }, { id: "x" }, { id: "y" }, { id: "w" }],
    links: [{ source: "r", target: "x" }, { source: "x", target: "y" }, { source: "r", target: "w" }, { source: "y", target: "w" }],
  });
  assert.equal(join.position.get("w").layer, 3);
});

test("node colours: tools, and calls by state", () => {
  assert.deepEqual(program.graph.nodes.map(nodeKind), ["done", "tool", "running", "queued"]);
  assert.equal(nodeKind({ kind: "call", status: "cancelled" }), "failed");
});

test("formatting helpers", () => {
  assert.equal(cachedShare(program), 0.5);
  assert.equal(cachedShare({ prompt_tokens: 0, cached_tokens: 0 }), null);
  assert.equal(seconds(0.25), "250 ms");
  assert.equal(seconds(12.34), "12.3 s");
  assert.equal(seconds(600), "10.0 min");
  assert.equal(seconds(null), "-");
});

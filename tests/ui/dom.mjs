// Loads the tracing UI from a running proxy into jsdom, runs app.js against the live API,
// and prints what the page shows as JSON: node tests/ui/dom.mjs PAGE_URL APP_JS_PATH
// (jsdom runs no module scripts, so app.js is imported here with the page's globals set.)
import { JSDOM } from "jsdom";

const [page, appPath] = process.argv.slice(2);
const html = await (await fetch(page)).text();
const dom = new JSDOM(html, { url: page, pretendToBeVisual: true });
const { window } = dom;
Object.assign(globalThis, {
  window,
  document: window.document,
  location: window.location,
  history: window.history,
});
const realFetch = globalThis.fetch;
globalThis.fetch = (url, options) => realFetch(new URL(url, window.location.href), options);
await import(appPath);
await new Promise((resolve) => setTimeout(resolve, 1500)); // the first refresh, and one tick

const d = window.document;
const rects = [...d.querySelectorAll("#timeline rect")];
console.log(
  JSON.stringify({
    error: d.getElementById("error").textContent,
    policy: d.getElementById("policy").textContent,
    rows: [...d.querySelectorAll("#rows tr")].map((tr) => [...tr.children].map((td) => td.textContent)),
    detailHidden: d.getElementById("detail").hidden,
    title: d.getElementById("title").textContent,
    outlook: d.getElementById("outlook").textContent,
    bars: rects.map((r) => r.getAttribute("class")),
    lanes: [...d.querySelectorAll("#timeline text")].map((t) => t.textContent),
    graphNodes: d.querySelectorAll("#graph rect").length,
    graphEdges: d.querySelectorAll("#graph path").length,
  })
);
process.exit(0);

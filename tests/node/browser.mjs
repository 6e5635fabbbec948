// Headless Chromium with the browser example's pages, as a child process of
// tests/browser_pgtest.cpp (through node_client.h), driven over the Chrome DevTools Protocol.
//
//   node browser.mjs <unused> '{"chromium": "/usr/bin/chromium"}'
//
// It serves examples/browser (serve.mjs) on 127.0.0.1 and starts Chromium, then prints
// {"type":"ready","origin":…,"chromiumPid":…}. Commands, one JSON object a line; each is answered with one
// report line (or {"type":"failed","cmd":…,"message":…}):
//   {"cmd":"open","tab":T,"url":U}               a new tab → {"type":"opened","tab":T}
//   {"cmd":"wait","tab":T,"channels":[…],"status":{k:v},"timeout":ms}
//       polls the page until its channel list (#channels li, as a sorted list of ids) is
//       `channels` and #status has every data-* attribute in `status`
//       → {"type":"dom","tab":T,"matched":bool,"channels":[…],"status":{…},"text":…,"console":[…]}
//   {"cmd":"reload","tab":T}                     → {"type":"reloaded","tab":T}
//   {"cmd":"screenshot","tab":T,"path":P}        a PNG of the tab → {"type":"screenshot","path":P,"bytes":n}
//   {"cmd":"exit"}                               Chromium closed, its profile removed → {"type":"exited"}
// The page's console and uncaught exceptions are kept per tab; the last 20 come with a dom report
// that did not match.
import { spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { serve } from "../../examples/browser/serve.mjs";

const require = createRequire(import.meta.url);
const WebSocket = require("ws");

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const opts = JSON.parse(process.argv[3] ?? "{}");

const { server, origin } = await serve({ host: "127.0.0.1", port: 0 });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "mn-chromium-"));
// setpriv --pdeathsig: Chromium dies with this process even when the test SIGKILLs it; its
// helper processes follow their browser process.
const chromium = spawn("setpriv", ["--pdeathsig", "KILL", opts.chromium ?? "chromium",
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
  "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
  "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", `--user-data-dir=${profile}`,
  "--disable-crash-reporter", "about:blank"],
  // Its crash handler and caches write under HOME and XDG_*: into the profile too, removed at exit.
  { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile } });
let chromiumLog = "";
chromium.stderr.on("data", (d) => (chromiumLog = (chromiumLog + d).slice(-4000)));
let exiting = false;
// Set once Chromium or the DevTools connection is gone: every command then fails with it. The
// process itself stays until told to exit, so the test's writes to its stdin never hit a
// closed pipe.
let gone = null;
let nextId = 1;
const pending = new Map(); // CDP request id -> {resolve, reject, method}
function fail(message) {
  if (gone) return;
  gone = message;
  out({ type: "failed", cmd: "chromium", message });
  for (const p of pending.values()) p.reject(new Error(message));
  pending.clear();
}
chromium.on("exit", (code, sig) => {
  if (!exiting) fail(`chromium exited (${code ?? sig}): ${chromiumLog}`);
});

function chromiumExited() {
  if (chromium.exitCode !== null || chromium.signalCode !== null) return Promise.resolve();
  return new Promise((r) => chromium.once("exit", r));
}

function cleanup() {
  try {
    chromium.kill("SIGKILL");
  } catch {}
  try {
    // Chromium's helpers may still be writing there for a moment.
    fs.rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  } catch {}
  server.close();
}

// Chromium writes its DevTools port and path there once it listens.
async function devtoolsUrl() {
  const file = path.join(profile, "DevToolsActivePort");
  for (let i = 0; i < 300 && !gone; ++i) {
    try {
      const [port, wsPath] = fs.readFileSync(file, "utf8").split("\n");
      if (port && wsPath) return `ws://127.0.0.1:${port}${wsPath}`;
    } catch {}
    await sleep(100);
  }
  throw new Error(gone ?? `no DevToolsActivePort after 30 s: ${chromiumLog}`);
}

let cdp = null;
try {
  cdp = new WebSocket(await devtoolsUrl(), { perMessageDeflate: false, maxPayload: 256 << 20 });
  await new Promise((resolve, reject) => {
    cdp.once("open", resolve);
    cdp.once("error", reject);
  });
  cdp.on("close", () => exiting || fail(`the DevTools connection closed: ${chromiumLog}`));
  cdp.on("message", onMessage);
} catch (e) {
  fail(`could not reach Chromium's DevTools: ${e.message}`);
}
const tabs = new Map(); // name -> {targetId, sessionId, console: string[]}
const bySession = new Map();

function onMessage(data) {
  const m = JSON.parse(String(data));
  if (m.id !== undefined) {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error) p?.reject(new Error(`${p.method}: ${m.error.message}`));
    else p?.resolve(m.result);
    return;
  }
  const tab = bySession.get(m.sessionId);
  if (!tab) return;
  if (m.method === "Runtime.consoleAPICalled") {
    tab.console.push(`${m.params.type}: ${m.params.args.map((a) => a.value ?? a.description ?? a.type).join(" ")}`);
  } else if (m.method === "Runtime.exceptionThrown") {
    const d = m.params.exceptionDetails;
    tab.console.push(`exception: ${d.exception?.description ?? d.text}`);
  } else if (m.method === "Log.entryAdded") {
    tab.console.push(`${m.params.entry.level}: ${m.params.entry.text}${m.params.entry.url ? ` (${m.params.entry.url})` : ""}`);
  }
  if (tab.console.length > 100) tab.console.splice(0, tab.console.length - 100);
}

function send(method, params = {}, sessionId = undefined) {
  if (gone) return Promise.reject(new Error(gone));
  const id = nextId++;
  cdp.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject, method }));
}

function tab(name) {
  const t = tabs.get(name);
  if (!t) throw new Error(`no tab ${name}`);
  return t;
}

// What the test asserts on: the page's channel ids (sorted), #status's data-* and text.
const READ_DOM = `JSON.stringify({
  channels: [...document.querySelectorAll("#channels li")].map((li) => li.dataset.channelId).sort(),
  status: { ...(document.getElementById("status")?.dataset ?? {}) },
  text: document.getElementById("status")?.textContent ?? null,
})`;

async function readDom(t) {
  const r = await send("Runtime.evaluate", { expression: READ_DOM, returnByValue: true }, t.sessionId);
  return r.result?.value ? JSON.parse(r.result.value) : { channels: [], status: {}, text: null };
}

const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

const commands = {
  async open({ tab: name, url }) {
    const { targetId } = await send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
    const t = { targetId, sessionId, console: [] };
    tabs.set(name, t);
    bySession.set(sessionId, t);
    await send("Runtime.enable", {}, sessionId);
    await send("Log.enable", {}, sessionId);
    await send("Page.enable", {}, sessionId);
    await send("Emulation.setDeviceMetricsOverride", { width: 800, height: 600, deviceScaleFactor: 1, mobile: false }, sessionId);
    await send("Page.navigate", { url }, sessionId);
    return { type: "opened", tab: name };
  },
  async wait({ tab: name, channels = [], status = {}, timeout = 15000 }) {
    const t = tab(name);
    const want = [...channels].sort();
    const deadline = Date.now() + timeout;
    let dom;
    for (;;) {
      try {
        dom = await readDom(t);
      } catch (e) {
        if (gone) throw e;
        dom = { channels: [], status: {}, text: `(not readable: ${e.message})` }; // between navigations
      }
      const statusOk = Object.entries(status).every(([k, v]) => dom.status[k] === String(v));
      if (sameList(dom.channels, want) && statusOk) return { type: "dom", tab: name, matched: true, ...dom };
      if (Date.now() >= deadline) return { type: "dom", tab: name, matched: false, ...dom, console: t.console.slice(-20) };
      await sleep(50);
    }
  },
  async reload({ tab: name }) {
    await send("Page.reload", { ignoreCache: true }, tab(name).sessionId);
    return { type: "reloaded", tab: name };
  },
  async screenshot({ tab: name, path: file }) {
    const { data } = await send("Page.captureScreenshot", { format: "png" }, tab(name).sessionId);
    const bytes = Buffer.from(data, "base64");
    fs.writeFileSync(file, bytes);
    return { type: "screenshot", path: file, bytes: bytes.length };
  },
  async exit() {
    exiting = true;
    const exited = chromiumExited();
    if (!gone) send("Browser.close").catch(() => {});
    await Promise.race([exited, sleep(5000)]);
    cleanup();
    out({ type: "exited" });
    process.exit(0);
  },
};

out({ type: "ready", origin, chromiumPid: chromium.pid });

// One command at a time, in order.
let queue = Promise.resolve();
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  queue = queue.then(async () => {
    let cmd;
    try {
      cmd = JSON.parse(line);
      const f = commands[cmd.cmd];
      if (!f) throw new Error("unknown command");
      out(await f(cmd));
    } catch (e) {
      out({ type: "failed", cmd: cmd?.cmd ?? line, message: e.message });
    }
  });
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    exiting = true;
    const exited = chromiumExited();
    chromium.kill("SIGKILL");
    await Promise.race([exited, sleep(3000)]);
    cleanup();
    process.exit(1);
  });
}
process.stdin.on("end", () => {
  queue = queue.then(() => commands.exit());
});

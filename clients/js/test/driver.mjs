// The library as a child process of tests/js_client_pgtest.cpp (through tests/node/node_client.h).
//
//   node driver.mjs <ws url> '<options as JSON>'
//
// Options: {token?, getToken?: true, refreshBefore?, backoff?}. With getToken, each call prints
// {"type":"token-request"} and waits for a `token <jwt>` line on stdin (tokens sent ahead are
// queued). Storage is a Map that outlives the client, so `restart` shows what a page reload does.
//
// Every line on stdout is one JSON report: connected, snapshot, joined, left, duplicate,
// refreshed, disconnected, error (the library's events), token-request, state.
// Commands, one a line: `token <jwt>`, `state`, `restart` (close the client, make a new one on
// the same storage), `close`, `exit`.
import { createRequire } from "node:module";
import readline from "node:readline";
import { createClient } from "../membership-notifier.js";

const require = createRequire(new URL("../../../tests/node/package.json", import.meta.url));
const WebSocket = require("ws");

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const [url, optionsText = "{}"] = process.argv.slice(2);
const opts = JSON.parse(optionsText);
const storage = new Map();

const tokens = [];
const waiting = [];
function getToken() {
  out({ type: "token-request" });
  if (tokens.length) return Promise.resolve(tokens.shift());
  return new Promise((resolve) => waiting.push(resolve));
}

const ids = (channels) => channels.map((c) => c.channelId).sort();

function make() {
  const c = createClient({
    url,
    token: opts.token,
    getToken: opts.getToken ? getToken : undefined,
    storage,
    WebSocket,
    refreshBefore: opts.refreshBefore,
    backoff: opts.backoff ?? { min: 100, max: 1000 },
  });
  c.on("connected", (s) => out({ type: "connected", ...s }));
  c.on("snapshot", (channels) => out({ type: "snapshot", channels: ids(channels) }));
  c.on("joined", (d, meta) => out({ type: "joined", channelId: d.channelId, xType: d.xType, id: meta.id }));
  c.on("left", (d, meta) => out({ type: "left", channelId: d.channelId, id: meta.id }));
  c.on("duplicate", ({ id }) => out({ type: "duplicate", id }));
  c.on("refreshed", ({ validUntil }) => out({ type: "refreshed", validUntil }));
  c.on("disconnected", (d) => out({ type: "disconnected", ...d }));
  c.on("error", (e) => out({ type: "error", code: e.code, message: e.message }));
  return c;
}

let client = make();

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.startsWith("token ")) {
    const t = line.slice(6);
    if (waiting.length) waiting.shift()(t);
    else tokens.push(t);
  } else if (line === "state") {
    out({ type: "state", channels: ids([...client.channels.values()]), offset: client.offset,
          stored: storage.size > 0, connected: client.connected });
  } else if (line === "restart") {
    client.close();
    client = make();
  } else if (line === "close") {
    client.close();
  } else if (line === "exit") {
    process.exit(0);
  }
});
process.stdin.on("end", () => process.exit(0));

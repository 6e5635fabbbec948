// Part C's clients: quiet users (no changes of their own) that keep the last offset any frame
// gave them and, when dropped, come back with it after RETRY_MS, as the client in docs/protocol.md does.
//
//   BENCH_JWT_SECRET=… node quiet.js PORT CLIENTS USER_PREFIX RETRY_MS
//
// Prints one JSON line when every client has its first session frame, and one when every
// client is back after its first drop: how long the wave took from the first drop, how many
// resumed (recovered: true), and how many position frames came before the drop.
"use strict";
const WebSocket = require("ws");
const crypto = require("crypto");

const [port, clients, prefix, RETRY_MS] = [process.argv[2], +process.argv[3], process.argv[4], +process.argv[5]];
const secret = process.env.BENCH_JWT_SECRET;
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
function token(sub) {
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ sub, exp: Math.floor(Date.now() / 1000) + 7200 });
  const sig = crypto.createHmac("sha256", secret).update(head + "." + body).digest("base64url");
  return head + "." + body + "." + sig;
}

let connected = 0, firstDrop = 0, back = 0, recovered = 0, positions = 0;
const waits = [];
function finish() {
  waits.sort((a, b) => a - b);
  const at = (q) => waits[Math.min(waits.length - 1, Math.floor(q * waits.length))];
  console.log(JSON.stringify({ back, recovered, positions, p50_ms: at(0.5), p99_ms: at(0.99), last_ms: waits[waits.length - 1] }));
  process.exit(0);
}

function client(i) {
  let offset = null, dropped = false, done = false;
  const open = () => {
    const url = `ws://127.0.0.1:${port}/ws?access_token=${token(prefix + i)}` + (offset ? `&offset=${offset}` : "");
    const ws = new WebSocket(url);
    ws.on("message", (data) => {
      const f = JSON.parse(data);
      if (f.offset) offset = f.offset;
      if (f.event === "position" && !dropped) positions++;
      if (f.event !== "session") return;
      if (!dropped) {
        if (++connected === clients) console.log(JSON.stringify({ connected }));
      } else if (!done) {
        done = true;
        if (f.data.recovered) recovered++;
        waits.push(Date.now() - firstDrop);
        if (++back === clients) finish();
      }
    });
    ws.on("close", () => {
      if (!dropped) {
        dropped = true;
        if (!firstDrop) firstDrop = Date.now();
      }
      if (!done) setTimeout(open, RETRY_MS);
    });
    ws.on("error", () => {});
  };
  open();
}
for (let i = 0; i < clients; i++) client(i);

// How many of a long-polling client's requests reach the process that holds its session, when
// several processes share the port (--reuse-port). Each client opens an Engine.IO polling
// session from its own loopback address, then sends `requests` POSTs (a pong, "3", which the
// server takes at any time), each on a new TCP connection as a browser's may be; a request
// that reaches another process is refused "Session ID unknown" (400).
//
//   node bench/clients/polling_steering.js <port> [clients=12] [requests=30]
//
// Prints one JSON line: requests sent, answered by the session's process, refused elsewhere.
"use strict";

const http = require("http");

const port = Number(process.argv[2]);
const clients = Number(process.argv[3] || 12);
const requests = Number(process.argv[4] || 30);

function request(localAddress, method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method, path, localAddress, agent: false,
        headers: body ? { "Content-Type": "text/plain;charset=UTF-8", "Content-Length": Buffer.byteLength(body) } : {} },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (data += d));
        res.on("end", () => resolve({ status: res.statusCode, body: data }));
      });
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}

async function client(i) {
  const localAddress = `127.0.${1 + Math.floor((i + 2) / 250)}.${2 + ((i + 2) % 250)}`;
  const open = await request(localAddress, "GET", "/socket.io/?EIO=4&transport=polling");
  if (open.status !== 200) throw new Error(`open from ${localAddress}: ${open.status} ${open.body}`);
  const sid = JSON.parse(open.body.slice(1)).sid;
  let ok = 0, elsewhere = 0;
  for (let k = 0; k < requests; ++k) {
    const r = await request(localAddress, "POST", `/socket.io/?EIO=4&transport=polling&sid=${sid}`, "3");
    if (r.status === 200) ++ok;
    else if (r.status === 400 && r.body.includes('"code":1')) ++elsewhere;
    else throw new Error(`POST from ${localAddress}: ${r.status} ${r.body}`);
  }
  return { ok, elsewhere };
}

(async () => {
  const results = await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  const ok = results.reduce((a, r) => a + r.ok, 0);
  const elsewhere = results.reduce((a, r) => a + r.elsewhere, 0);
  const perClient = results.map((r) => r.ok);
  console.log(JSON.stringify({ clients, requests: clients * requests, answered: ok, refused_elsewhere: elsewhere,
                               share: +(ok / (clients * requests)).toFixed(3), per_client_answered: perClient }));
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});

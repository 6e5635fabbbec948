// A stock `ws` client, driven by tests/tls_pgtest.cpp over stdin/stdout.
//
//   node ws_client.js <url> '<options as JSON>'
//
// The options go to new WebSocket() unchanged (ca, minVersion, maxVersion, headers). Every
// line on stdout is one JSON object:
//   {"type":"open","cn":…,"protocol":"TLSv1.3"}   (the server certificate's CN, the TLS version)
//   {"type":"message","data":…}                     (each frame, parsed as JSON)
//   {"type":"close","code":…,"reason":…}
//   {"type":"error","message":…,"code":…}
// Commands, one a line on stdin: `send <text>`, `exit`.
"use strict";

const WebSocket = require("ws");
const readline = require("readline");

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const ws = new WebSocket(process.argv[2], JSON.parse(process.argv[3] || "{}"));

ws.on("open", () => {
  const socket = ws._socket;
  const cert = socket.getPeerCertificate ? socket.getPeerCertificate() : {};
  out({ type: "open", cn: cert && cert.subject ? cert.subject.CN : null, protocol: socket.getProtocol ? socket.getProtocol() : null });
});
ws.on("message", (data) => out({ type: "message", data: JSON.parse(data.toString()) }));
ws.on("close", (code, reason) => out({ type: "close", code, reason: reason.toString() }));
ws.on("error", (err) => out({ type: "error", message: err.message, code: err.code || null }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.startsWith("send ")) ws.send(line.slice(5));
  else if (line === "exit") process.exit(0);
});
process.stdin.on("end", () => process.exit(0));

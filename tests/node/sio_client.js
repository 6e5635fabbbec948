// A stock socket.io-client, driven by tests/socketio_pgtest.cpp over stdin/stdout.
//
//   node sio_client.js <url> '<options as JSON>'
//
// The options go to io() unchanged (auth, query, extraHeaders, reconnection delays), except
// `logPings`, which is ours. Every line on stdout is one JSON object:
//   {"type":"connect","id":…,"pid":…,"recovered":true|false}
//   {"type":"event","name":…,"args":[…]}            (args as the listener got them)
//   {"type":"connect_error","message":…,"data":…}
//   {"type":"disconnect","reason":…}
//   {"type":"reconnect_attempt","attempt":n}
//   {"type":"ping"}                                  (only with logPings)
//   {"type":"state","pid":…,"offset":…,"connected":…}
// Commands, one a line on stdin:
//   engine-close    close the transport as a network failure would (the client reconnects)
//   forget-offset   drop the recorded offset, as if no event had arrived before the drop
//   emit <json>     socket.emit(...array): a client event the server should shrug off
//   emit-ack <json> socket.emit(...array, callback): reports {"type":"ack","args":[…]}
//   reconnect       socket.connect(): with reconnection off, the test decides when
//   disconnect      socket.disconnect()
//   state           print the recovery state the client keeps
//   exit
// The script only reports; the C++ test decides what is right.
"use strict";

const { io } = require("socket.io-client");
const readline = require("readline");

const url = process.argv[2];
const options = JSON.parse(process.argv[3] || "{}");
const logPings = options.logPings === true;
delete options.logPings;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const socket = io(url, { transports: ["websocket"], ...options });

socket.on("connect", () => {
  out({ type: "connect", id: socket.id, pid: socket._pid, recovered: socket.recovered === true });
});
socket.onAny((name, ...args) => out({ type: "event", name, args }));
socket.on("connect_error", (err) => {
  out({ type: "connect_error", message: err.message, data: err.data === undefined ? null : err.data });
});
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
socket.io.on("reconnect_attempt", (attempt) => out({ type: "reconnect_attempt", attempt }));
if (logPings) socket.io.on("ping", () => out({ type: "ping" }));

const commands = {
  "engine-close": () => socket.io.engine.close(),
  "forget-offset": () => {
    delete socket._lastOffset;
  },
  emit: (arg) => socket.emit(...JSON.parse(arg)),
  "emit-ack": (arg) => socket.emit(...JSON.parse(arg), (...args) => out({ type: "ack", args })),
  reconnect: () => socket.connect(),
  disconnect: () => socket.disconnect(),
  state: () =>
    out({
      type: "state",
      pid: socket._pid === undefined ? null : socket._pid,
      offset: socket._lastOffset === undefined ? null : socket._lastOffset,
      connected: socket.connected,
    }),
  exit: () => process.exit(0),
};

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const space = line.indexOf(" ");
  const name = space < 0 ? line : line.slice(0, space);
  const command = commands[name];
  if (!command) return out({ type: "error", message: "unknown command: " + name });
  command(space < 0 ? "" : line.slice(space + 1));
});
// The test is gone or done: do not outlive it.
process.stdin.on("end", () => process.exit(0));

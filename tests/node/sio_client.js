// A stock socket.io-client, driven by tests/socketio_pgtest.cpp over stdin/stdout.
//
//   node sio_client.js <url> '<options as JSON>'
//
// The options go to io() unchanged (auth, query, extraHeaders, reconnection delays), except
// ours: `logPings`; `logTransport` (report each engine's transport and its upgrade);
// `defaultTransports` (leave `transports` at the client's default, polling then WebSocket,
// instead of WebSocket only); `localAddress` (connect from this address, every request and
// the WebSocket alike). Every line on stdout is one JSON object:
//   {"type":"connect","id":…,"pid":…,"recovered":true|false}
//   {"type":"event","name":…,"args":[…]}            (args as the listener got them)
//   {"type":"connect_error","message":…,"data":…}
//   {"type":"disconnect","reason":…}
//   {"type":"reconnect_attempt","attempt":n}
//   {"type":"ping"}                                  (only with logPings)
//   {"type":"transport","name":…}                    (only with logTransport: an engine opened)
//   {"type":"upgrade","name":…}                      (only with logTransport)
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
const http = require("http");
const readline = require("readline");

const url = process.argv[2];
const options = JSON.parse(process.argv[3] || "{}");
const logPings = options.logPings === true;
const logTransport = options.logTransport === true;
const defaultTransports = options.defaultTransports === true;
delete options.logPings;
delete options.logTransport;
delete options.defaultTransports;
// Long-polling requests go through this agent (engine.io-client passes it to every request and
// to the WebSocket); without keep-alive, each request is a new TCP connection, as from a
// browser behind a proxy.
if (options.localAddress) options.agent = new http.Agent({ localAddress: options.localAddress });

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const socket = io(url, defaultTransports ? options : { transports: ["websocket"], ...options });

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
if (logTransport)
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    out({ type: "transport", name: engine.transport.name });
    engine.on("upgrade", (transport) => out({ type: "upgrade", name: transport.name }));
  });

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
      transport: socket.io.engine ? socket.io.engine.transport.name : null,
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

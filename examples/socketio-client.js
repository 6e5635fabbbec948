// A stock Socket.IO 4 client against membership-notifier's /socket.io/ endpoint.
//
//   npm ci --prefix examples          # socket.io-client
//   node examples/socketio-client.js http://127.0.0.1:8080 "$TOKEN"
//
// Nothing here is specific to the sidecar but the URL: the same code ran against a Socket.IO
// server before. After a dropped connection, or a restart of the sidecar, the client
// reconnects by itself and `socket.recovered` says whether it got every missed event (true)
// or a fresh channel.snapshot (false: it was gone longer than the log's retention).
"use strict";

const { io } = require("socket.io-client");

const [url = "http://127.0.0.1:8080", token = process.env.TOKEN] = process.argv.slice(2);
const socket = io(url, { auth: { token } });  // the default transports: long-polling, then WebSocket

socket.on("connect", () => console.log(`connected (recovered: ${socket.recovered === true})`));
socket.on("connect_error", (err) => {
  // "unauthorized" (err.data.code: invalid_token or missing_token) is final: get a new token.
  console.error(`connect_error: ${err.message}`, err.data ?? "");
});
socket.on("disconnect", (reason) => console.log(`disconnected: ${reason}`));

// The last argument of every event is its offset; the client keeps it to recover with.
socket.on("channel.snapshot", ({ channels }) => {
  console.log("member of", channels.map((c) => c.channelId));
});
socket.on("channel.joined", (m) => console.log(`joined ${m.channelId} at ${m.occurredAt}`));
socket.on("channel.left", (m) => console.log(`left ${m.channelId} at ${m.occurredAt}`));

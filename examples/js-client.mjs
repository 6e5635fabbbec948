// The JavaScript client library (clients/js) in Node: prints the user's channels as they change,
// and how long after the change (its occurredAt, taken in the writing transaction) each event
// arrived. The demo (scripts/demo.sh) runs it.
//
//   npm ci --prefix examples      # ws: Node before 22 has no global WebSocket
//   node examples/js-client.mjs ws://127.0.0.1:8080/ws "$TOKEN"
//
// The offset and channel set persist in a Map here, so they last as long as the process; a
// browser page passes localStorage instead (examples/browser). Stop the sidecar, change
// memberships, start it again: the client reconnects by itself and says whether it got every
// missed change (recovered).
import { createClient } from "../clients/js/membership-notifier.js";

const [url = "ws://127.0.0.1:8080/ws", token = process.env.TOKEN] = process.argv.slice(2);
const WebSocket = globalThis.WebSocket ?? (await import("ws")).default;

const client = createClient({ url, token, WebSocket, storage: new Map() });
const show = () => console.log("  member of:", [...client.channels.keys()].sort().join(", ") || "nothing");

// Milliseconds since an occurredAt ("2026-11-26T16:00:00.123456Z"), to the microsecond.
function since(occurredAt) {
  const micros = Date.parse(occurredAt.slice(0, 19) + "Z") * 1000 + Number(occurredAt.slice(20, 26).padEnd(6, "0"));
  return ((performance.timeOrigin + performance.now()) * 1000 - micros) / 1000;
}
const after = (m) => `${since(m.occurredAt).toFixed(2)} ms after the change`;

client.on("connected", ({ userId, recovered }) => console.log(`connected as ${userId} (recovered: ${recovered})`));
client.on("snapshot", () => show());
client.on("joined", (m) => { console.log(`joined ${m.channelId} (xType ${m.xType}), ${after(m)}`); show(); });
client.on("left", (m) => { console.log(`left ${m.channelId}, ${after(m)}`); show(); });
client.on("disconnected", ({ code, reason, reconnectIn }) =>
  console.log(`disconnected: ${code}${reason ? ` ${reason}` : ""}` + (reconnectIn === null ? " (stopped)" : `, again in ${Math.round(reconnectIn)} ms`)));
client.on("error", (e) => console.error(`error: ${e.code}: ${e.message}`));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { client.close(); process.exit(0); });

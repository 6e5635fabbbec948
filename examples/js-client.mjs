// The JavaScript client library (clients/js) in Node: prints the user's channels as they change.
//
//   npm install ws          # Node before 22 has no global WebSocket
//   node examples/js-client.mjs ws://127.0.0.1:8080/ws "$TOKEN"
//
// The offset and channel set persist in a Map here, so they last as long as the process; a
// browser page passes localStorage instead. Stop it, restart the sidecar, change memberships:
// the client reconnects by itself and says whether it got every missed change (recovered).
import { createClient } from "../clients/js/membership-notifier.js";

const [url = "ws://127.0.0.1:8080/ws", token = process.env.TOKEN] = process.argv.slice(2);
const WebSocket = globalThis.WebSocket ?? (await import("ws")).default;

const client = createClient({ url, token, WebSocket, storage: new Map() });
const show = () => console.log("  member of:", [...client.channels.keys()].sort().join(", ") || "nothing");

client.on("connected", ({ userId, recovered }) => console.log(`connected as ${userId} (recovered: ${recovered})`));
client.on("snapshot", () => show());
client.on("joined", (m) => { console.log(`joined ${m.channelId} (${m.xType}) at ${m.occurredAt}`); show(); });
client.on("left", (m) => { console.log(`left ${m.channelId} at ${m.occurredAt}`); show(); });
client.on("disconnected", ({ code, reason, reconnectIn }) =>
  console.log(`disconnected: ${code}${reason ? ` ${reason}` : ""}` + (reconnectIn === null ? " (stopped)" : `, again in ${Math.round(reconnectIn)} ms`)));
client.on("error", (e) => console.error(`error: ${e.code}: ${e.message}`));
process.on("SIGINT", () => { client.close(); process.exit(0); });

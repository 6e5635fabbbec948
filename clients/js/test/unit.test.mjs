// The library's rules without a server: node --test clients/js/test/
// (What it does against the real sidecar is tests/js_client_pgtest.cpp.)
import test from "node:test";
import assert from "node:assert/strict";
import {
  ChannelState, backoffDelay, connectUrl, createClient, jwtPayload, refreshDelay,
} from "../membership-notifier.js";

const joined = (channelId, id, offset) => ({
  event: "channel.joined", data: { channelId, userId: "u1", xType: "dm", occurredAt: "t" }, id, offset,
});
const left = (channelId, id, offset) => ({
  event: "channel.left", data: { channelId, userId: "u1", xType: null, occurredAt: "t" }, id, offset,
});
const snapshot = (ids, offset) => ({
  event: "channel.snapshot", data: { channels: ids.map((channelId) => ({ channelId, xType: "dm" })) }, offset,
});
const names = (s) => [...s.channels.keys()].sort();

test("a change whose id was already applied is dropped, so a late repeat cannot undo a later change", () => {
  const s = new ChannelState();
  s.apply(snapshot([], "o0"));
  assert.equal(s.apply(joined("c1", "7", "o1")).kind, "joined");
  assert.equal(s.apply(left("c1", "8", "o2")).kind, "left");
  assert.equal(s.apply(joined("c1", "7", "o3")).kind, "duplicate");
  assert.deepEqual(names(s), []);
  assert.equal(s.offset, "o3", "the offset is kept from every frame");
});

test("ids are compared as strings: 2.42 and 42 are different events", () => {
  const s = new ChannelState();
  s.apply(joined("a", "42", "o1"));
  assert.equal(s.apply(joined("b", "2.42", "o2")).kind, "joined");
  assert.equal(s.apply(joined("c", "042", "o3")).kind, "joined");
  assert.deepEqual(names(s), ["a", "b", "c"]);
});

test("a snapshot replaces the whole state and forgets the ids seen", () => {
  const s = new ChannelState();
  s.apply(joined("old", "1", "o1"));
  s.apply(snapshot(["x", "y"], "o2"));
  assert.deepEqual(names(s), ["x", "y"]);
  assert.equal(s.seen.size, 0);
  assert.equal(s.apply(joined("old", "1", "o3")).kind, "joined", "after a snapshot an id counts afresh");
});

test("a position frame moves the offset and nothing else", () => {
  const s = new ChannelState();
  s.apply(snapshot(["a"], "o1"));
  assert.equal(s.apply({ event: "position", offset: "o9" }).kind, "position");
  assert.equal(s.offset, "o9");
  assert.deepEqual(names(s), ["a"]);
});

test("the persisted state restores channels, offset and ids together, and junk is refused", () => {
  const s = new ChannelState();
  s.apply({ event: "session", data: { userId: "u1", recovered: false } });
  s.userId = "u1";
  s.apply(snapshot(["a"], "o1"));
  s.apply(joined("b", "5", "o2"));
  const r = new ChannelState();
  assert.ok(r.restore(s.serialize()));
  assert.deepEqual(names(r), ["a", "b"]);
  assert.equal(r.offset, "o2");
  assert.equal(r.userId, "u1");
  assert.equal(r.apply(joined("b", "5", "o2")).kind, "duplicate");
  for (const junk of [null, "", "{", "[]", '{"v":2,"offset":"x","channels":[]}', '{"v":1,"channels":[]}']) {
    assert.equal(new ChannelState().restore(junk), false, String(junk));
  }
});

test("backoff is jittered, grows by doubling and is capped", () => {
  const b = { min: 100, max: 1000 };
  assert.equal(backoffDelay(0, b, () => 1), 100);
  assert.equal(backoffDelay(3, b, () => 1), 800);
  assert.equal(backoffDelay(10, b, () => 1), 1000);
  assert.equal(backoffDelay(10, b, () => 0), 50, "never below half the minimum");
  const seen = new Set(Array.from({ length: 50 }, () => Math.round(backoffDelay(5, b))));
  assert.ok(seen.size > 10, "random, so clients restarting together spread out");
});

test("a token is refreshed refreshBefore ahead of exp, or at half its life when shorter", () => {
  const now = 1_000_000_000_000;
  assert.equal(refreshDelay(now / 1000 + 3600, 30000, now), 3570000);
  assert.equal(refreshDelay(now / 1000 + 4, 30000, now), 2000);
  assert.equal(refreshDelay(now / 1000 - 1, 30000, now), null);
  assert.equal(refreshDelay(undefined, 30000, now), null);
});

test("a JWT's payload is read without verifying; a malformed one gives null", () => {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  assert.deepEqual(jwtPayload(`${b64u({ alg: "HS256" })}.${b64u({ sub: "ü", exp: 5 })}.sig`), { sub: "ü", exp: 5 });
  for (const t of ["", "a", "a.!!!.c", `a.${Buffer.from("[1]").toString("base64url")}x.c`, 42]) {
    assert.equal(jwtPayload(t), null, String(t));
  }
});

test("the connect URL carries the token and the offset, escaped", () => {
  assert.equal(connectUrl("http://h:1/ws", "a.b.c", null), "ws://h:1/ws?access_token=a.b.c");
  assert.equal(connectUrl("https://h/ws?x=1", "t", "2.5_x"), "wss://h/ws?x=1&access_token=t&offset=2.5_x");
  assert.equal(connectUrl("ws://h/ws", "t+/", "o"), "ws://h/ws?access_token=t%2B%2F&offset=o");
});

// A WebSocket stand-in: records what the client opens and sends; the test plays the server.
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = new URL(url);
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000, reason = "") { queueMicrotask(() => this.onclose?.({ code, reason })); }
  frame(f) { this.onmessage({ data: JSON.stringify(f) }); }
  serverClose(code, reason = "") { this.onclose({ code, reason }); }
}
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

test("a client resumes with its last offset after a drop, and takes a new token after 4001", async () => {
  FakeSocket.all = [];
  let n = 0;
  const c = createClient({
    url: "ws://h/ws", getToken: async () => `t${++n}`, WebSocket: FakeSocket, backoff: { min: 10, max: 20 },
  });
  const events = [];
  for (const e of ["connected", "snapshot", "joined", "left", "duplicate", "disconnected"]) c.on(e, () => events.push(e));
  await tick();
  const [s1] = FakeSocket.all;
  assert.equal(s1.url.searchParams.get("access_token"), "t1");
  assert.equal(s1.url.searchParams.get("offset"), null);
  s1.frame({ event: "session", data: { userId: "u1", recovered: false } });
  s1.frame(snapshot(["a"], "o1"));
  s1.frame(joined("b", "1", "o2"));
  s1.serverClose(1001, "shutting down");
  await tick(30);
  const s2 = FakeSocket.all[1];
  assert.equal(s2.url.searchParams.get("offset"), "o2");
  assert.equal(s2.url.searchParams.get("access_token"), "t2");
  s2.frame({ event: "session", data: { userId: "u1", recovered: true } });
  s2.frame(joined("b", "1", "o2"));
  s2.frame(left("a", "2", "o3"));
  assert.deepEqual([...c.channels.keys()], ["b"]);
  s2.serverClose(4001, "token expired");
  await tick(30);
  assert.equal(FakeSocket.all[2].url.searchParams.get("access_token"), "t3");
  assert.equal(FakeSocket.all[2].url.searchParams.get("offset"), "o3");
  assert.deepEqual(events, ["connected", "snapshot", "joined", "disconnected", "connected", "duplicate", "left", "disconnected"]);
  c.close();
});

test("a client bug close (1003) or an expired static token stops the client", async () => {
  FakeSocket.all = [];
  for (const [code, opts] of [[1003, { getToken: async () => "t" }], [4001, { token: "t" }]]) {
    const c = createClient({ url: "ws://h/ws", WebSocket: FakeSocket, backoff: { min: 5, max: 5 }, ...opts });
    const gone = [];
    c.on("disconnected", (d) => gone.push(d.reconnectIn));
    c.on("error", () => {});
    await tick();
    const before = FakeSocket.all.length;
    FakeSocket.all.at(-1).serverClose(code);
    await tick(20);
    assert.deepEqual(gone, [null], `close ${code}`);
    assert.equal(FakeSocket.all.length, before, `no reconnect after ${code}`);
  }
});

test("a stored state of another user is thrown away and the client reconnects for a snapshot", async () => {
  FakeSocket.all = [];
  const storage = new Map();
  const old = new ChannelState();
  old.userId = "u1";
  old.apply(snapshot(["secret"], "o5"));
  storage.set("membership-notifier", old.serialize());
  const c = createClient({ url: "ws://h/ws", token: "t", getToken: async () => "t2", storage, WebSocket: FakeSocket });
  await tick();
  assert.deepEqual([...c.channels.keys()], ["secret"]);
  assert.equal(FakeSocket.all[0].url.searchParams.get("offset"), "o5");
  FakeSocket.all[0].frame({ event: "session", data: { userId: "u2", recovered: true } });
  await tick();
  assert.deepEqual([...c.channels.keys()], []);
  assert.equal(FakeSocket.all[1].url.searchParams.get("offset"), null);
  c.close();
});

test("the client refreshes in band before exp and not with a static token", async () => {
  FakeSocket.all = [];
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const jwt = (exp) => `${b64u({ alg: "HS256" })}.${b64u({ sub: "u1", exp })}.s`;
  const c = createClient({
    url: "ws://h/ws", token: jwt(Date.now() / 1000 + 0.1), getToken: async () => "fresh", WebSocket: FakeSocket,
  });
  await tick();
  FakeSocket.all[0].frame({ event: "session", data: { userId: "u1", recovered: false } });
  await tick(80);
  assert.deepEqual(FakeSocket.all[0].sent, [{ event: "refresh", data: { token: "fresh" } }]);
  c.close();
});

test("without getToken the given token serves every reconnect until the server says it expired", async () => {
  FakeSocket.all = [];
  const c = createClient({ url: "ws://h/ws", token: "static", WebSocket: FakeSocket, backoff: { min: 5, max: 5 } });
  c.on("error", () => {});
  await tick();
  FakeSocket.all[0].frame({ event: "session", data: { userId: "u1", recovered: false } });
  FakeSocket.all[0].frame(snapshot([], "o1"));
  FakeSocket.all[0].serverClose(1013, "too slow");
  await tick(20);
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(FakeSocket.all[1].url.searchParams.get("access_token"), "static");
  assert.equal(FakeSocket.all[1].url.searchParams.get("offset"), "o1");
  c.close();
});

test("a token callback that throws or gives nothing is retried after the backoff, not fatal", async () => {
  FakeSocket.all = [];
  const answers = [() => { throw new Error("down"); }, () => "", () => "good"];
  const errors = [];
  const c = createClient({
    url: "ws://h/ws", getToken: async () => answers.shift()(), WebSocket: FakeSocket, backoff: { min: 5, max: 5 },
  });
  c.on("error", (e) => errors.push(e.code));
  await tick(40);
  assert.deepEqual(errors, ["token_failed", "token_failed"]);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(FakeSocket.all[0].url.searchParams.get("access_token"), "good");
  c.close();
});

test("a burst of changes is persisted once, as a consistent state, and close() writes what is pending", async () => {
  FakeSocket.all = [];
  const writes = [];
  const storage = { getItem: () => null, setItem: (k, v) => writes.push(JSON.parse(v)) };
  const c = createClient({ url: "ws://h/ws", token: "t", storage, WebSocket: FakeSocket });
  await tick();
  const s = FakeSocket.all[0];
  s.frame({ event: "session", data: { userId: "u1", recovered: false } });
  s.frame(snapshot([], "o0"));
  for (let i = 1; i <= 100; i++) s.frame(joined(`c${i}`, String(i), `o${i}`));
  assert.equal(writes.length, 0, "not written per change");
  await tick(150);
  assert.equal(writes.length, 1);
  assert.equal(writes[0].offset, "o100");
  assert.equal(writes[0].channels.length, 100);
  s.frame(left("c1", "101", "o101"));
  c.close();
  assert.equal(writes.length, 2, "close() writes at once");
  assert.equal(writes[1].offset, "o101");
  assert.equal(writes[1].channels.length, 99);
});

test("sessions the server ends at once do not reset the backoff: the retries slow down", async () => {
  FakeSocket.all = [];
  const waits = [];
  const random = Math.random;
  Math.random = () => 1; // each wait is then its cap
  try {
    const c = createClient({ url: "ws://h/ws", token: "t", WebSocket: FakeSocket, backoff: { min: 4, max: 1000 } });
    c.on("disconnected", ({ reconnectIn }) => waits.push(reconnectIn));
    await tick();
    for (let i = 0; i < 4; i++) {
      const s = FakeSocket.all.at(-1);
      s.frame({ event: "session", data: { userId: "u1", recovered: false } });
      s.serverClose(1013, "database unavailable");
      await tick(waits.at(-1) + 20);
    }
    c.close();
  } finally {
    Math.random = random;
  }
  assert.equal(FakeSocket.all.length, 5);
  assert.deepEqual(waits, [4, 8, 16, 32]);
});

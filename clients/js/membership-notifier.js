// membership-notifier client: the client's side of the /ws contract (docs/protocol.md), for
// browsers and Node. No dependencies.
//
// It keeps the user's channel set, the last offset and the ids applied since the last snapshot;
// resumes with the offset after any disconnect; drops a frame whose id it already applied;
// applies a snapshot as the whole state; reconnects with jittered exponential backoff, taking a
// fresh token each time; and refreshes the token in band before it expires.

/** @typedef {{channelId: string, xType: (string|null)}} Channel */
/** @typedef {{channelId: string, userId: string, xType: (string|null), occurredAt: string}} Change */

/**
 * Where the client persists what it needs to resume: anything with getItem/setItem (localStorage,
 * sessionStorage) or get/set (a Map). Values are strings.
 * @typedef {{getItem(key: string): (string|null), setItem(key: string, value: string): void}
 *          | {get(key: string): (string|undefined), set(key: string, value: string): unknown}} Storage
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} url The /ws endpoint: `wss://host/ws` (`https:` and `http:` are turned into `wss:` and `ws:`).
 * @property {string} [token] A JWT for the first connection.
 * @property {() => (string|Promise<string>)} [getToken] Called for every connection after the first
 *   (every one, when no `token` is given) and for each in-band refresh. Without it `token` serves
 *   every reconnect, and the client stops at the first 4001 or 4003.
 * @property {Storage} [storage] Persists the offset with the channel set it belongs to, so that a
 *   new client (a page reload) resumes instead of taking a snapshot.
 * @property {string} [storageKey] Key in `storage`; default `"membership-notifier"`.
 * @property {typeof WebSocket} [WebSocket] Constructor; default `globalThis.WebSocket`
 *   (Node before 22 needs one here, e.g. the `ws` package).
 * @property {{min?: number, max?: number}} [backoff] Reconnect delays in ms: the n-th attempt in a
 *   row waits a random time in [min / 2, min(max, min * 2^n)]; default {min: 500, max: 30000}.
 * @property {number} [refreshBefore] Ms before the token's `exp` to refresh it in band; default
 *   30000. A token that lives less than twice that is refreshed at half its remaining life.
 * @property {boolean} [autoConnect] Connect at once; default true. Else call `connect()`.
 */

/** Close codes after which reconnecting cannot help: the client sent something wrong. */
export const FATAL_CLOSE_CODES = new Set([1002, 1003, 1007, 1009]);
/** Close codes that say the token is no longer good: reconnect with a new one. */
export const TOKEN_CLOSE_CODES = new Set([4001, 4003]);

const DEFAULT_STORAGE_KEY = "membership-notifier";
// Ids remembered for dropping repeats. A repeat comes close behind the original (a resume
// overlapping what was delivered), so the oldest can go.
const MAX_SEEN_IDS = 10000;
// How long a session must last for the next disconnect to start the backoff over.
const STABLE_MS = 10000;
// How long a change may wait to be persisted (see persist()).
const PERSIST_DELAY_MS = 100;
// setTimeout's limit (2^31 - 1 ms, about 24.8 days); longer delays fire at once.
const MAX_TIMER_MS = 2147483647;

/**
 * The payload of a JWT, decoded without verifying it (the server verifies). Null if it does not parse.
 * @param {string} token
 * @returns {object|null}
 */
export function jwtPayload(token) {
  const part = typeof token === "string" ? token.split(".")[1] : undefined;
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return payload && typeof payload === "object" ? payload : null;
  } catch {
    return null;
  }
}

/**
 * When to refresh a token that expires at `expSeconds` (unix seconds): `refreshBefore` ms ahead of
 * it, but never earlier than half its remaining life, so a short-lived token is not refreshed in a
 * tight loop. Returns a delay in ms from `nowMs`, or null when the token has no future expiry.
 * @param {number|undefined} expSeconds
 * @param {number} refreshBefore
 * @param {number} [nowMs]
 * @returns {number|null}
 */
export function refreshDelay(expSeconds, refreshBefore, nowMs = Date.now()) {
  if (typeof expSeconds !== "number" || !Number.isFinite(expSeconds)) return null;
  const left = expSeconds * 1000 - nowMs;
  if (left <= 0) return null;
  return Math.max(left - refreshBefore, left / 2);
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first after a disconnect): uniform in
 * [min / 2, min(max, min * 2^attempt)]. Random, so clients dropped together by a restart do not
 * come back together; never under min / 2, so none hammers.
 * @param {number} attempt
 * @param {{min: number, max: number}} backoff
 * @param {() => number} [random]
 * @returns {number}
 */
export function backoffDelay(attempt, { min, max }, random = Math.random) {
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 30));
  const floor = Math.min(min / 2, cap);
  return floor + random() * (cap - floor);
}

/**
 * The client's state and the rules that change it, without I/O: what a frame does to the channel
 * set, the offset and the ids seen. Exported for tests and for clients of their own.
 */
export class ChannelState {
  constructor() {
    /** @type {Map<string, Channel>} */
    this.channels = new Map();
    /** @type {string|null} the last offset received, from any frame */
    this.offset = null;
    /** @type {string|null} the user the state belongs to, from the session frame */
    this.userId = null;
    /** @type {Set<string>} ids applied since the last snapshot */
    this.seen = new Set();
  }

  /**
   * Applies one parsed frame. Returns what happened, for the caller to report:
   * `{kind: 'snapshot'|'joined'|'left'|'duplicate'|'session'|'position'|'refreshed'|'error'|'ignored', ...}`.
   * @param {any} frame
   */
  apply(frame) {
    if (!frame || typeof frame !== "object" || typeof frame.event !== "string") return { kind: "ignored" };
    let result;
    switch (frame.event) {
      case "session":
        result = { kind: "session", userId: String(frame.data?.userId), recovered: frame.data?.recovered === true };
        break;
      case "channel.snapshot": {
        this.channels.clear();
        for (const c of frame.data?.channels ?? []) {
          this.channels.set(c.channelId, { channelId: c.channelId, xType: c.xType ?? null });
        }
        this.seen.clear();
        result = { kind: "snapshot" };
        break;
      }
      case "channel.joined":
      case "channel.left": {
        const id = frame.id;
        if (typeof id === "string" && this.seen.has(id)) {
          result = { kind: "duplicate", id };
          break;
        }
        if (typeof id === "string") this.remember(id);
        const d = frame.data ?? {};
        if (frame.event === "channel.joined") {
          this.channels.set(d.channelId, { channelId: d.channelId, xType: d.xType ?? null });
          result = { kind: "joined", data: d, id };
        } else {
          this.channels.delete(d.channelId);
          result = { kind: "left", data: d, id };
        }
        break;
      }
      case "position":
        result = { kind: "position" };
        break;
      case "refreshed":
        result = { kind: "refreshed", validUntil: frame.data?.validUntil };
        break;
      case "error":
        result = { kind: "error", code: frame.data?.code, message: frame.data?.message };
        break;
      default:
        result = { kind: "ignored" };
    }
    // Rule 1: the last offset, whatever frame carried it (a duplicate's too: it is no older).
    if (typeof frame.offset === "string" && frame.offset !== "") this.offset = frame.offset;
    return result;
  }

  /** @param {string} id */
  remember(id) {
    this.seen.add(id);
    if (this.seen.size > MAX_SEEN_IDS) this.seen.delete(this.seen.values().next().value);
  }

  /** Forgets everything: the next connection takes a snapshot. */
  reset() {
    this.channels.clear();
    this.seen.clear();
    this.offset = null;
    this.userId = null;
  }

  /** The persisted form: the offset with the channel set and ids it belongs to. */
  serialize() {
    return JSON.stringify({
      v: 1,
      offset: this.offset,
      userId: this.userId,
      channels: [...this.channels.values()],
      seen: [...this.seen].slice(-1000),
    });
  }

  /**
   * Restores a serialize()d state; false (and nothing changed) if `text` is not one.
   * @param {string|null|undefined} text
   */
  restore(text) {
    if (typeof text !== "string") return false;
    let s;
    try {
      s = JSON.parse(text);
    } catch {
      return false;
    }
    if (!s || s.v !== 1 || typeof s.offset !== "string" || !Array.isArray(s.channels)) return false;
    this.reset();
    this.offset = s.offset;
    this.userId = typeof s.userId === "string" ? s.userId : null;
    for (const c of s.channels) this.channels.set(c.channelId, { channelId: c.channelId, xType: c.xType ?? null });
    for (const id of Array.isArray(s.seen) ? s.seen : []) if (typeof id === "string") this.seen.add(id);
    return true;
  }
}

/**
 * The URL to connect to: `url` with the token and, when there is one, the offset.
 * @param {string} url
 * @param {string} token
 * @param {string|null} offset
 */
export function connectUrl(url, token, offset) {
  const u = new URL(url);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  u.searchParams.set("access_token", token);
  if (offset) u.searchParams.set("offset", offset);
  else u.searchParams.delete("offset");
  return u.toString();
}

function storageGet(storage, key) {
  if (!storage) return null;
  if (typeof storage.getItem === "function") return storage.getItem(key);
  if (typeof storage.get === "function") return storage.get(key) ?? null;
  return null;
}

function storageSet(storage, key, value) {
  if (!storage) return;
  if (typeof storage.setItem === "function") storage.setItem(key, value);
  else if (typeof storage.set === "function") storage.set(key, value);
}

/**
 * @typedef {object} Client
 * @property {Map<string, Channel>} channels The user's channels, kept current (the same Map throughout).
 * @property {string|null} offset The last offset received.
 * @property {string|null} userId The user the server says the token names, once connected.
 * @property {boolean} connected True between a session frame and the next disconnect.
 * @property {(event: string, cb: Function) => (() => void)} on Adds a listener; returns its remover.
 * @property {(event: string, cb: Function) => void} off
 * @property {() => void} connect Connects now (when `autoConnect` was false, or to skip a backoff wait).
 * @property {() => void} close Closes the socket and stops reconnecting.
 */

/**
 * Creates a client. Events (`on(name, cb)`):
 * - `connected` ({userId, recovered}): a session began; `recovered: false` means a snapshot follows.
 * - `snapshot` (channels: Channel[]): the whole state was replaced.
 * - `joined` (change: Change, {id, offset}) / `left` (change, {id, offset}): one change, each id once.
 * - `duplicate` ({id}): a change whose id was already applied came again and was dropped.
 * - `refreshed` ({validUntil}): the server took a new token; the socket lives until validUntil.
 * - `disconnected` ({code, reason, reconnectIn}): the socket closed; `reconnectIn` is the delay in
 *   ms before the next attempt, or null when the client has stopped (close(), a client bug, or an
 *   expired token without getToken).
 * - `error` (Error with `.code`): an error frame, a token callback that threw, a frame that does
 *   not parse, or a socket error. Informational: the client carries on.
 * @param {ClientOptions} options
 * @returns {Client}
 */
export function createClient(options) {
  const {
    url,
    token: firstToken,
    getToken,
    storage,
    storageKey = DEFAULT_STORAGE_KEY,
    WebSocket: WS = globalThis.WebSocket,
    refreshBefore = 30000,
    autoConnect = true,
  } = options ?? {};
  const backoff = { min: options?.backoff?.min ?? 500, max: options?.backoff?.max ?? 30000 };
  if (typeof url !== "string") throw new TypeError("createClient: url is required");
  if (typeof firstToken !== "string" && typeof getToken !== "function") {
    throw new TypeError("createClient: token or getToken is required");
  }
  if (typeof WS !== "function") {
    throw new TypeError("createClient: no WebSocket constructor (pass options.WebSocket, e.g. the ws package)");
  }

  const state = new ChannelState();
  state.restore(storageGet(storage, storageKey));
  /** @type {Map<string, Set<Function>>} */
  const listeners = new Map();
  let unusedToken = typeof firstToken === "string" ? firstToken : null;
  let socket = null;
  let connected = false;
  let stopped = false;
  let attempt = 0; // reconnect attempts since the last session that lasted STABLE_MS
  let sessionStart = 0;
  let reconnectTimer = null;
  let refreshTimer = null;
  let needsFreshToken = false;
  let opening = false; // awaiting a token for the next socket
  let persistTimer = null;

  function emit(name, ...args) {
    for (const cb of [...(listeners.get(name) ?? [])]) {
      try {
        cb(...args);
      } catch (e) {
        // A listener's bug must not break the client's state; report it where it can be seen.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  function error(code, message, cause) {
    const e = new Error(message);
    e.code = code;
    if (cause !== undefined) e.cause = cause;
    emit("error", e);
  }

  // Writes coalesce: the state of 10,000 channels serializes to about 0.5 MB in about 1.3 ms, too
  // much for every change of a burst. What is written is always a consistent state (an offset with
  // its channel set and ids), only up to PERSIST_DELAY_MS old; resuming from it replays the rest.
  function persist() {
    if (!storage || persistTimer !== null) return;
    persistTimer = setTimeout(flush, PERSIST_DELAY_MS);
  }

  function flush() {
    clearTimeout(persistTimer);
    persistTimer = null;
    if (!storage) return;
    try {
      storageSet(storage, storageKey, state.serialize());
    } catch (e) {
      error("storage_failed", `could not persist the offset: ${e?.message ?? e}`, e);
    }
  }

  // The given token serves the first connection; after that getToken serves each one. Without
  // getToken the given token serves until the server says it expired.
  async function nextToken() {
    if (unusedToken !== null) {
      const t = unusedToken;
      if (typeof getToken === "function") unusedToken = null;
      if (!needsFreshToken) return t;
    }
    if (typeof getToken !== "function") return null;
    return await getToken();
  }

  function clearTimers() {
    clearTimeout(reconnectTimer);
    clearTimeout(refreshTimer);
    reconnectTimer = refreshTimer = null;
  }

  function scheduleRefresh(expSeconds) {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    if (typeof getToken !== "function") return;
    const delay = refreshDelay(expSeconds, refreshBefore);
    if (delay === null || delay > MAX_TIMER_MS) return;
    refreshTimer = setTimeout(refresh, delay);
  }

  async function refresh() {
    const s = socket;
    let t;
    try {
      t = await getToken();
    } catch (e) {
      error("token_failed", `getToken failed: ${e?.message ?? e}`, e);
      return; // the socket closes with 4001 at exp; the reconnect asks again
    }
    if (s !== socket || !connected || stopped) return;
    try {
      s.send(JSON.stringify({ event: "refresh", data: { token: t } }));
    } catch (e) {
      error("refresh_failed", `could not send the refresh: ${e?.message ?? e}`, e);
    }
  }

  async function open() {
    if (stopped || socket || opening) return;
    let t;
    opening = true;
    try {
      t = await nextToken();
    } catch (e) {
      error("token_failed", `getToken failed: ${e?.message ?? e}`, e);
      return retry(null, "token callback failed");
    } finally {
      opening = false;
    }
    if (stopped || socket) return;
    if ((typeof t !== "string" || t === "") && typeof getToken === "function") {
      error("token_failed", "getToken gave no token");
      return retry(null, "token callback gave no token");
    }
    if (typeof t !== "string" || t === "") {
      stopped = true;
      error("token_expired", "the token expired and there is no getToken to get another");
      emit("disconnected", { code: 4001, reason: "no token", reconnectIn: null });
      return;
    }
    needsFreshToken = false;
    let ws;
    try {
      ws = new WS(connectUrl(url, t, state.offset));
    } catch (e) {
      error("connect_failed", `could not open the socket: ${e?.message ?? e}`, e);
      return retry(null, "constructor threw");
    }
    socket = ws;
    const tokenExp = jwtPayload(t)?.exp;
    ws.onmessage = (ev) => {
      if (ws !== socket) return;
      let frame;
      try {
        frame = JSON.parse(typeof ev.data === "string" ? ev.data : String(ev.data));
      } catch (e) {
        return error("bad_frame", "a frame that is not JSON", e);
      }
      onFrame(ws, frame, tokenExp);
    };
    ws.onerror = (ev) => {
      if (ws !== socket) return;
      error("socket_error", ev?.message ?? ev?.error?.message ?? "WebSocket error", ev?.error);
    };
    ws.onclose = (ev) => {
      if (ws !== socket) return;
      socket = null;
      // A session that lasted restarts the backoff; one the server ends at once (1013 while the
      // database is away) does not, so such a loop slows down instead of hammering.
      if (connected && Date.now() - sessionStart >= STABLE_MS) attempt = 0;
      connected = false;
      clearTimeout(refreshTimer);
      refreshTimer = null;
      const code = ev?.code ?? 1006;
      const reason = ev?.reason ?? "";
      if (stopped) return emit("disconnected", { code, reason, reconnectIn: null });
      if (FATAL_CLOSE_CODES.has(code)) {
        stopped = true;
        error("client_bug", `the server closed with ${code} (${reason}): a client bug, not reconnecting`);
        return emit("disconnected", { code, reason, reconnectIn: null });
      }
      if (TOKEN_CLOSE_CODES.has(code)) needsFreshToken = true;
      if (needsFreshToken && typeof getToken !== "function") {
        stopped = true;
        error("token_expired", `the server closed with ${code} (${reason}) and there is no getToken`);
        return emit("disconnected", { code, reason, reconnectIn: null });
      }
      retry(code, reason);
    };
  }

  function retry(code, reason) {
    const delay = backoffDelay(attempt++, backoff);
    emit("disconnected", { code: code ?? 1006, reason: reason ?? "", reconnectIn: delay });
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      open();
    }, delay);
  }

  function onFrame(ws, frame, tokenExp) {
    const before = state.offset;
    const r = state.apply(frame);
    switch (r.kind) {
      case "session":
        if (r.recovered && state.userId !== null && r.userId !== state.userId) {
          // The stored state is another user's: start over with a snapshot.
          state.reset();
          flush();
          ws.close(1000, "another user");
          socket = null;
          connected = false;
          return void open();
        }
        state.userId = r.userId;
        connected = true;
        sessionStart = Date.now();
        scheduleRefresh(tokenExp);
        emit("connected", { userId: r.userId, recovered: r.recovered });
        break;
      case "snapshot":
        persist();
        emit("snapshot", [...state.channels.values()]);
        return;
      case "joined":
      case "left":
        persist();
        emit(r.kind, r.data, { id: r.id, offset: state.offset });
        return;
      case "duplicate":
        emit("duplicate", { id: r.id });
        break;
      case "refreshed":
        scheduleRefresh(r.validUntil);
        emit("refreshed", { validUntil: r.validUntil });
        break;
      case "error":
        error(r.code ?? "server_error", r.message ?? "error frame");
        break;
    }
    if (state.offset !== before) persist();
  }

  const client = {
    get channels() {
      return state.channels;
    },
    get offset() {
      return state.offset;
    },
    get userId() {
      return state.userId;
    },
    get connected() {
      return connected;
    },
    on(name, cb) {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(cb);
      return () => client.off(name, cb);
    },
    off(name, cb) {
      listeners.get(name)?.delete(cb);
    },
    connect() {
      stopped = false;
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      open();
    },
    close() {
      stopped = true;
      clearTimers();
      if (persistTimer !== null) flush();
      const s = socket;
      if (s) s.close(1000, "client closed");
    },
  };
  if (autoConnect) queueMicrotask(() => open());
  return client;
}

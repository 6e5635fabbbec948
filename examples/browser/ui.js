// What both pages share: their settings, read from the page's address, and the DOM they keep up.
//
// Settings come from the fragment (#server=…&token=…), which the browser never sends to any
// server, or from the query; the fragment wins. A real application would get its token from
// its own backend instead (the library's getToken).

/** @returns {{server: string, token: (string|null), transports: (string[]|null)}} */
export function settings() {
  const p = new URLSearchParams(location.search);
  for (const [k, v] of new URLSearchParams(location.hash.slice(1))) p.set(k, v);
  const transports = p.get("transports");
  return {
    server: (p.get("server") || "http://127.0.0.1:8080").replace(/\/+$/, ""),
    token: p.get("token") || null,
    transports: transports ? transports.split(",").map((t) => t.trim()).filter(Boolean) : null,
  };
}

/**
 * Shows the channel set: one <li data-channel-id> per channel, sorted by id.
 * @param {Iterable<{channelId: string, xType: (string|null)}>} channels
 */
export function renderChannels(channels) {
  const list = document.getElementById("channels");
  const sorted = [...channels].sort((a, b) => (a.channelId < b.channelId ? -1 : a.channelId > b.channelId ? 1 : 0));
  list.replaceChildren(
    ...sorted.map((c) => {
      const li = document.createElement("li");
      li.dataset.channelId = c.channelId;
      li.textContent = c.channelId;
      if (c.xType !== null && c.xType !== undefined) {
        const x = document.createElement("span");
        x.className = "x-type";
        x.textContent = c.xType;
        li.append(" ", x);
      }
      return li;
    }),
  );
  document.getElementById("count").textContent = String(sorted.length);
}

/**
 * The connection's state: text for people, data-* attributes for tests.
 * @param {"connecting"|"connected"|"disconnected"|"stopped"|"error"} state
 * @param {string} text
 * @param {Record<string, string|boolean>} [data] more data-* attributes (recovered, transport)
 */
export function setStatus(state, text, data = {}) {
  const el = document.getElementById("status");
  el.dataset.state = state;
  for (const [k, v] of Object.entries(data)) el.dataset[k] = String(v);
  el.textContent = text;
}

const MAX_LOG = 50;

/** Adds a line on top of the event log (the last 50 are kept). */
export function logLine(text) {
  const log = document.getElementById("log");
  const li = document.createElement("li");
  li.textContent = `${new Date().toISOString().slice(11, 23)} ${text}`;
  log.prepend(li);
  while (log.children.length > MAX_LOG) log.lastElementChild.remove();
}

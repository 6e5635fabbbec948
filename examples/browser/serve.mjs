// A tiny static server for the browser example: the two pages, their shared script, the client
// library (clients/js) and the stock socket.io-client bundle, and nothing else. The sidecar
// serves no files; in production these pages are the application's own.
//
//   npm ci --prefix examples          # socket.io-client, for socketio.html
//   node examples/browser/serve.mjs [--host 127.0.0.1] [--port 8081]
//
// It prints the address it listens on. The pages come from a different origin than the
// sidecar's: start the sidecar with --allowed-origins set to that address. Only GET and HEAD of
// the files listed below are answered; anything else is 404 or 405.
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };

// URL path -> file, or a function that finds it (the npm package may not be installed).
const ROUTES = {
  "/": path.join(here, "index.html"),
  "/index.html": path.join(here, "index.html"),
  "/library.html": path.join(here, "library.html"),
  "/socketio.html": path.join(here, "socketio.html"),
  "/ui.js": path.join(here, "ui.js"),
  "/style.css": path.join(here, "style.css"),
  "/membership-notifier.js": path.join(here, "..", "..", "clients", "js", "membership-notifier.js"),
  "/socket.io.min.js": () => fromNodeModules("socket.io-client/dist/socket.io.min.js"),
};

// A file of an installed package, looked up where Node would look for the package (its
// "exports" hide the dist/ files from require.resolve).
function fromNodeModules(file) {
  for (const dir of require.resolve.paths(file.split("/")[0]) ?? []) {
    const candidate = path.join(dir, file);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`${file} not found`);
}

/**
 * Starts the server; resolves once it listens.
 * @param {{host?: string, port?: number}} [options] port 0 (the default) lets the OS choose.
 * @returns {Promise<{server: http.Server, origin: string}>} origin: "http://host:port", what the
 *   sidecar's --allowed-origins must name.
 */
export function serve({ host = "127.0.0.1", port = 0 } = {}) {
  const server = http.createServer(async (req, res) => {
    const send = (status, body, type = "text/plain; charset=utf-8") => {
      res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "GET only\n");
    const route = ROUTES[new URL(req.url ?? "/", "http://x").pathname];
    if (route === undefined) return send(404, "not found\n");
    let file;
    try {
      file = typeof route === "function" ? route() : route;
    } catch {
      return send(404, "socket.io-client is not installed: run `npm ci --prefix examples`\n");
    }
    try {
      send(200, await fs.readFile(file), TYPES[path.extname(file)] ?? "application/octet-stream");
    } catch (e) {
      send(500, `could not read ${path.basename(file)}: ${e.code ?? e.message}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const a = server.address();
      const h = a.family === "IPv6" ? `[${a.address}]` : a.address;
      resolve({ server, origin: `http://${h}:${a.port}` });
    });
  });
}

function flag(args, name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const args = process.argv.slice(2);
  const { origin } = await serve({ host: flag(args, "--host", "127.0.0.1"), port: Number(flag(args, "--port", "8081")) });
  console.log(`serving the browser example on ${origin}/`);
}

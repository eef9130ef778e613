// A tiny static server for the built app (dist/) that reverse-proxies the
// node's API (/v1/*, /healthz) so the app and the API share one origin.
//
//   node test/serve.mjs --node http://127.0.0.1:8080 [--port 5173] [--host 127.0.0.1] [--dir dist] [--config app-config.json]
//
// Also importable: `startServer({ node, port, dir, config })` → { url, close() }.
// `config` (an object, or the file given by --config) is answered at
// /config.json instead of dist/config.json: the app's config, e.g. the
// county's crisis line `{ "crisis_line": { "name": "…", "phone": "…" } }`.
import { createServer, request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createReadStream, readFileSync, statSync } from "node:fs";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".webmanifest": "application/manifest+json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".wasm": "application/wasm",
  ".ico": "image/x-icon",
};

export function startServer({ node, port = 0, host = "127.0.0.1", dir = fileURLToPath(new URL("../dist/", import.meta.url)), config }) {
  const root = resolve(dir);
  const target = new URL(node);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname.startsWith("/v1/") || url.pathname === "/healthz") return proxy(req, res, target);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405).end();
      return;
    }
    if (config && url.pathname === "/config.json") {
      res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-cache" }).end(req.method === "HEAD" ? undefined : JSON.stringify(config));
      return;
    }
    let decoded;
    try {
      decoded = decodeURIComponent(url.pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    let path = normalize(join(root, decoded));
    if (path !== root && !path.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    let stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isDirectory()) {
      path = join(path, "index.html");
      stat = statSync(path, { throwIfNoEntry: false });
    }
    if (!stat?.isFile()) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
      return;
    }
    const headers = {
      "Content-Type": TYPES[extname(path)] ?? "application/octet-stream",
      "Content-Length": stat.size,
      // Hashed assets never change; the page and the service worker always revalidate.
      "Cache-Control": url.pathname.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
      "X-Content-Type-Options": "nosniff",
    };
    res.writeHead(200, headers);
    if (req.method === "HEAD") return res.end();
    createReadStream(path).pipe(res);
  });
  return new Promise((resolvePromise, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolvePromise({
        url: `http://${host}:${address.port}`,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections?.();
            server.close(() => r());
          }),
      });
    });
  });
}

/** Streams the request to the node and the answer back (SSE included). */
function proxy(req, res, target) {
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  const headers = { ...req.headers, host: target.host };
  delete headers.connection;
  const upstream = send(
    {
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers,
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", () => {
    if (!res.headersSent) res.writeHead(502, { "Content-Type": "text/plain" });
    res.end("bad gateway");
  });
  res.on("close", () => upstream.destroy());
  req.pipe(upstream);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = Object.fromEntries(
    process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
  );
  if (!args.node) {
    console.error("usage: node test/serve.mjs --node http://127.0.0.1:PORT [--port 5173] [--host 127.0.0.1] [--dir dist] [--config app-config.json]");
    process.exit(2);
  }
  const config = args.config ? JSON.parse(readFileSync(args.config, "utf8")) : undefined;
  const { url } = await startServer({ node: args.node, port: Number(args.port ?? 5173), host: args.host ?? "127.0.0.1", dir: args.dir, config });
  console.log(`serving the app at ${url} (API → ${args.node})`);
}

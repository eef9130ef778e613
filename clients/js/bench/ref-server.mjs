// Reference: a minimal automerge-repo sync server (Repo + NodeWSServerAdapter,
// in-memory, no storage), run as a child process of bench.mjs (IPC).
// It counts websocket frame payload bytes in both directions.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocketServer } from "ws";
import { Repo } from "@automerge/automerge-repo";
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket";
import * as A from "@automerge/automerge";

const bytes = { in: 0, out: 0, framesIn: 0, framesOut: 0 };
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
// Registered before the adapter's own listener, so every send is counted.
wss.on("connection", (ws) => {
  ws.on("message", (data) => {
    bytes.in += data.byteLength ?? data.length;
    bytes.framesIn++;
  });
  const send = ws.send.bind(ws);
  ws.send = (data, ...rest) => {
    bytes.out += data.byteLength ?? data.length;
    bytes.framesOut++;
    return send(data, ...rest);
  };
});
await new Promise((r) => wss.once("listening", r));
const repo = new Repo({
  network: [new NodeWSServerAdapter(wss)],
  peerId: "ref-sync-server",
  // like automerge-repo-sync-server: answer requests, announce nothing
  sharePolicy: async () => false,
});

let handles = [];
const heads = (h) => [...h.heads()].sort().join(",");

process.on("message", async (msg) => {
  if (msg.cmd === "load") {
    const t0 = performance.now();
    handles = [];
    for (let i = 0; i < msg.count; i++) {
      handles.push(repo.import(readFileSync(join(msg.dir, `${i}.automerge`))));
    }
    process.send({
      cmd: "loaded",
      ms: performance.now() - t0,
      port: wss.address().port,
      urls: handles.map((h) => h.url),
      heads: handles.map(heads),
    });
  } else if (msg.cmd === "change") {
    const t0 = performance.now();
    handles.forEach((h, i) => h.change((d) => { d.vision = new A.ImmutableString(`ref resync ${i} ${Date.now()}`); }));
    process.send({ cmd: "changed", ms: performance.now() - t0, heads: handles.map(heads) });
  } else if (msg.cmd === "bytes") {
    process.send({ cmd: "bytes", bytes: { ...bytes } });
  } else if (msg.cmd === "stop") {
    await repo.shutdown().catch(() => undefined);
    wss.close();
    process.exit(0);
  }
});
process.send({ cmd: "ready" });

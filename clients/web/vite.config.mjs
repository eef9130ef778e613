// Vite build of the wrapsync web app into dist/ (static files).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { defineConfig } from "vite";

/**
 * Emits dist/sw.js from src/sw.js with the list of built files to precache
 * (the app shell) and a cache name that changes with them.
 */
function serviceWorker() {
  return {
    name: "wrapsync-service-worker",
    apply: "build",
    generateBundle(_options, bundle) {
      const files = Object.keys(bundle).filter((f) => !f.endsWith(".map"));
      const publicFiles = ["config.json", "manifest.webmanifest", "icons/icon.svg", "icons/icon-192.png", "icons/icon-512.png", "icons/maskable-512.png", "icons/apple-touch-icon.png"];
      const shell = ["./", ...files, ...publicFiles].sort();
      const version = createHash("sha256").update(shell.join("\n")).digest("hex").slice(0, 12);
      const source = readFileSync(new URL("./src/sw.js", import.meta.url), "utf8")
        .replace("__SHELL__", JSON.stringify(shell))
        .replace("__VERSION__", version);
      this.emitFile({ type: "asset", fileName: "sw.js", source });
    },
  };
}

export default defineConfig({
  // Relative asset URLs: the app works from any path it is served under.
  base: "./",
  resolve: {
    // The app and the SDK share one Automerge: its "slim" build, whose WASM
    // src/boot.ts loads from a separate file (no WASM bundler plugin needed).
    alias: [{ find: /^@automerge\/automerge$/, replacement: "@automerge/automerge/slim" }],
    dedupe: ["@automerge/automerge"],
  },
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1000,
  },
  plugins: [serviceWorker()],
});

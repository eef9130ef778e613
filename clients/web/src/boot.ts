/**
 * Entry point: loads Automerge's WASM (a separate, cacheable file that the
 * browser compiles while it downloads), then starts the app. The SDK's
 * `@automerge/automerge` import is aliased to `@automerge/automerge/slim`
 * (see vite.config.mjs), which is this same, now initialised, module.
 */
import { initializeWasm } from "@automerge/automerge/slim";
import wasmUrl from "@automerge/automerge/automerge.wasm?url";

await initializeWasm(wasmUrl);
await import("./main");

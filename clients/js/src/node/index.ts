/** Node-only parts of `@wrapsync/client` (file system storage). */
export { FileStore } from "./file-store.js";
export * from "../index.js";

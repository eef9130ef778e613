/**
 * What the app knows about the node it belongs to, from `config.json` beside
 * the app (its shape is `AppConfig`). Today whoever deploys the app writes
 * that file; once the node serves the app it is meant to answer
 * `GET /config.json` itself from its own config (its 24-hour crisis line),
 * so nothing here changes. The service worker fetches it network-first and
 * keeps the last copy, so the crisis card has the county line offline.
 */
export interface AppConfig {
  /** The county's 24-hour crisis line, shown on the crisis card beside 988 and 911. */
  crisis_line?: { phone: string; name?: string };
}

let config: AppConfig = {};

/** Reads `config.json`; a missing or malformed file is an empty config (988 and 911 still show). */
export async function loadConfig(): Promise<void> {
  try {
    const response = await fetch("./config.json", { cache: "no-cache" });
    if (!response.ok) return;
    const body: unknown = await response.json();
    if (!body || typeof body !== "object") return;
    const line = (body as Record<string, unknown>).crisis_line;
    if (line && typeof line === "object" && typeof (line as Record<string, unknown>).phone === "string") {
      const { phone, name } = line as Record<string, unknown>;
      config = { crisis_line: { phone: phone as string, ...(typeof name === "string" && name ? { name } : {}) } };
    }
  } catch {
    /* offline with no cached copy: no county line */
  }
}

export function appConfig(): AppConfig {
  return config;
}

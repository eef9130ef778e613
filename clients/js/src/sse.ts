/** A minimal Server-Sent Events parser (WHATWG event-stream format). */

export interface SseEvent {
  /** `event:` field, `message` when absent. */
  event: string;
  data: string;
  /** The last `id:` seen on the stream (the value to resume from). */
  id: string | undefined;
}

export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private lastId: string | undefined;
  /** Reconnection delay the server asked for with `retry:`. */
  retry: number | undefined;

  constructor(lastEventId?: string) {
    this.lastId = lastEventId;
  }

  get lastEventId(): string | undefined {
    return this.lastId;
  }

  /** Feeds decoded text; answers the events it completes. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone trailing \r may be the first half of \r\n: wait for more.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return undefined;
      }
      const event: SseEvent = {
        event: this.event || "message",
        data: this.data.join("\n"),
        id: this.lastId,
      };
      this.data = [];
      this.event = "";
      return event;
    }
    if (line.startsWith(":")) return undefined; // comment (keep-alive)
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (name) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
    }
    return undefined;
  }
}

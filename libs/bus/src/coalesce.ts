import type { NatsConnection } from "@nats-io/transport-node";

/**
 * The protocol handler of a nats.js 3 connection, as far as write coalescing needs it. nats.js
 * appends every command to an outbound buffer and flushes it to the socket in a microtask after
 * the first command of a batch: under load (handlers acknowledging, publishing and answering one
 * after another, each after an await) that is one socket write, one syscall and one read on the
 * server per message.
 */
interface ProtocolHandlerLike {
  outbound: { fill(buf: Uint8Array, ...payloads: Uint8Array[]): void; size(): number };
  pendingLimit: number;
  flushPending(): void;
  sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void;
}

const encoder = new TextEncoder();

/**
 * Makes the connection flush its outbound buffer once per turn of the event loop (`setImmediate`)
 * instead of once per microtask checkpoint, so what a turn's handlers write (acks, publishes,
 * replies) goes out in one socket write. A full buffer (`pendingLimit`) is still flushed at once,
 * and `flush()`/`drain()`/`close()` flush as before. Returns false, changing nothing, when the
 * connection does not look like the nats.js version this was written for.
 */
export function coalesceWrites(nc: NatsConnection): boolean {
  const p = (nc as unknown as { protocol?: Partial<ProtocolHandlerLike> }).protocol;
  if (!p || typeof p.sendCommand !== "function" || typeof p.flushPending !== "function" || typeof p.outbound?.fill !== "function") return false;
  const handler = p as ProtocolHandlerLike;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    handler.flushPending();
  };
  handler.sendCommand = function sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void {
    this.outbound.fill(typeof cmd === "string" ? encoder.encode(cmd) : cmd, ...payloads);
    if (this.outbound.size() >= this.pendingLimit) {
      this.flushPending();
      return;
    }
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  return true;
}

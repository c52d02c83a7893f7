import { SessionRecord, isToken } from "@orch/contracts";
import { decode } from "./codec.js";
import type { Bus } from "./connect.js";

/**
 * Reading worker sessions (the agent hub writes them). Records are keyed `<runId>.<sessionId>` in
 * the `sessions` bucket, so a run's sessions are one key filter away and a session is found by id
 * alone with `*.<sessionId>`.
 */

export const sessionKey = (runId: string, sessionId: string): string => `${runId}.${sessionId}`;

export interface StoredSession {
  record: SessionRecord;
  revision: number;
}

async function read(bus: Bus, key: string): Promise<StoredSession | null> {
  const kv = await bus.kv(bus.names.buckets.sessions);
  const e = await kv.get(key);
  if (!e || e.operation !== "PUT" || e.length === 0) return null;
  const d = decode(SessionRecord, e.value);
  if (!d.ok) {
    bus.logger.error({ key, error: d.error }, "unreadable session record");
    return null;
  }
  return { record: d.value, revision: e.revision };
}

export async function getSessionRecord(bus: Bus, runId: string, sessionId: string): Promise<StoredSession | null> {
  if (!isToken(runId) || !isToken(sessionId)) return null;
  return read(bus, sessionKey(runId, sessionId));
}

/** Every session key, or those matching a filter (`<runId>.>`, `*.<sessionId>`). */
export async function sessionKeys(bus: Bus, filter?: string): Promise<string[]> {
  const kv = await bus.kv(bus.names.buckets.sessions);
  const out: string[] = [];
  for await (const k of await kv.keys(filter)) out.push(k);
  return out;
}

export async function findSession(bus: Bus, sessionId: string): Promise<StoredSession | null> {
  if (!isToken(sessionId)) return null;
  const [key] = await sessionKeys(bus, `*.${sessionId}`);
  return key ? read(bus, key) : null;
}

/** A run's sessions, oldest first. */
export async function listRunSessions(bus: Bus, runId: string): Promise<SessionRecord[]> {
  if (!isToken(runId)) return [];
  const out: SessionRecord[] = [];
  for (const key of await sessionKeys(bus, `${runId}.*`)) {
    const s = await read(bus, key);
    if (s) out.push(s.record);
  }
  return out.sort((a, b) => a.createdAt - b.createdAt || a.sessionId.localeCompare(b.sessionId));
}

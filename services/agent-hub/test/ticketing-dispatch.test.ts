import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunSignalCommand, WorkItem } from "@orch/contracts";
import { createLogger } from "@orch/logging";
import { FakeLinear } from "@orch/testing";
import { isTicketWork, runTicketWork, TicketingService } from "../src/ticketing/index.js";

/**
 * Ticket work as the hub's consumer runs it, against a local Linear: a sync answered on the command
 * stream (`tickets_synced`, its command id from the attempt), a failure's text without the key, an
 * update tried again through a flaky tracker and written once, and nothing logged carries the key.
 * A tracker down for longer than the hub's tries (or the hub stopping): the writes not made yet are
 * handed to the intake (`ticket_write_failed`, keyed by the attempt); the intake's own dispatch is
 * tried once and answered `ticket_written` or `ticket_write_failed`.
 */

const KEY = "lin_api_dispatch_secret_0123456789";
/** Another tracker's key in the hub's environment: the Linear client does not know it, the hub still keeps it out. */
const OTHER = "sc_other_tracker_secret_987654321";
const lines: string[] = [];
const logger = createLogger({ service: "test" }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));

describe("runTicketWork", () => {
  const linear = new FakeLinear(KEY);
  const sent: RunSignalCommand[] = [];
  let opts: Parameters<typeof runTicketWork>[1];
  beforeAll(async () => {
    await linear.start();
    const env = { LINEAR_API_KEY: KEY, SHORTCUT_API_TOKEN: OTHER };
    opts = {
      service: new TicketingService({ settings: { "ticketing.linear": { apiUrl: linear.apiUrl, timeoutMs: 5_000 } }, env }),
      send: async (cmd) => void sent.push(cmd),
      logger,
      signal: new AbortController().signal,
      env,
      updateBackoffMs: 10,
    };
  });
  afterAll(() => linear.stop());

  const item = (type: string, attemptId: string, payload: Record<string, unknown>): WorkItem =>
    ({ runId: "intake-linear", type, attemptId, payload, kind: "sync", stepId: "x" }) as unknown as WorkItem;

  it("tells ticket work from steps", () => {
    expect(isTicketWork({ type: "tickets.sync" })).toBe(true);
    expect(isTicketWork({ type: "ticket.update" })).toBe(true);
    expect(isTicketWork({ type: "ticket.plan" })).toBe(false);
  });

  it("answers a sync with tickets_synced to the intake run, keyed by the attempt", async () => {
    const a = linear.addIssue({ title: "One" });
    await runTicketWork(
      item("tickets.sync", "intake-linear.tickets.sync.7", { provider: "ticketing.linear", query: { assignedToMe: true, states: [], limit: 10 } }),
      opts,
    );
    const cmd = sent.at(-1)!;
    expect(cmd).toMatchObject({ type: "run.signal", runId: "intake-linear", commandId: "tickets-synced:intake-linear.tickets.sync.7" });
    expect(cmd.signal).toMatchObject({ name: "tickets_synced", attemptId: "intake-linear.tickets.sync.7", answer: { ok: true } });
    expect((cmd.signal as any).answer.tickets.map((t: any) => t.id)).toContain(a.id);
  });

  it("a failed sync is answered typed, its text without the key", async () => {
    linear.fail(500, 1, { body: { errors: [{ message: `upstream said: bad keys ${KEY} ${OTHER}` }] } });
    await runTicketWork(
      item("tickets.sync", "intake-linear.tickets.sync.8", { provider: "ticketing.linear", query: { assignedToMe: true, states: [], limit: 10 } }),
      opts,
    );
    const answer = (sent.at(-1)!.signal as any).answer;
    expect(answer).toMatchObject({ ok: false, error: { retryable: true } });
    expect(answer.error.message).toMatch(/bad keys/);
    expect(JSON.stringify(answer)).not.toContain(KEY);
    expect(JSON.stringify(answer)).not.toContain(OTHER);
  });

  it("an update is tried again through a flaky tracker and written once", async () => {
    const a = linear.addIssue({ title: "Two" });
    const ticket = { provider: "ticketing.linear", id: a.id, key: a.identifier };
    const writes = [
      { kind: "state", key: "r.state.Implementing.1", state: "In Progress" },
      { kind: "comment", key: "r.stage.Implementing.1", body: "**Implementing** (In Progress)" },
    ];
    linear.fail(503, 2);
    await runTicketWork(item("ticket.update", "r.ticket.update.Implementing.1", { ticket, writes }), opts);
    expect(linear.stateOf(a.id)).toBe("In Progress");
    expect(linear.issues.get(a.id)!.comments).toHaveLength(1);
    // Redelivered: nothing written twice.
    await runTicketWork(item("ticket.update", "r.ticket.update.Implementing.1", { ticket, writes }), opts);
    expect(linear.issues.get(a.id)!.comments).toHaveLength(1);
    expect(lines.join("")).not.toContain(KEY);
    expect(lines.join("")).not.toContain(OTHER);
  });

  it("a tracker down for longer than the hub's tries: the writes not made yet go to the intake, keyed by the attempt", async () => {
    const a = linear.addIssue({ title: "Down" });
    const ticket = { provider: "ticketing.linear", id: a.id, key: a.identifier };
    const state = { kind: "state", key: "d.state.Implementing.1", state: "In Progress" };
    const comment = { kind: "comment", key: "d.stage.Implementing.1", body: "**Implementing** (In Progress)" };
    // How many requests a state write takes: the failure starts right after them (part way).
    const probe = linear.addIssue({ title: "Probe" });
    const before = linear.requests.length;
    await runTicketWork(item("ticket.update", "p.ticket.update.x.1", { ticket: { ...ticket, id: probe.id, key: probe.identifier }, writes: [state] }), opts);
    const stateRequests = linear.requests.length - before;
    sent.length = 0;
    linear.fail(503, Infinity, { after: stateRequests });
    try {
      const attemptId = "tk-d.ticket.update.Implementing.1";
      await runTicketWork(item("ticket.update", attemptId, { ticket, writes: [state, comment], intake: "intake-linear" }), { ...opts, updateTries: 2 });
      expect(linear.stateOf(a.id)).toBe("In Progress");
      expect(linear.issues.get(a.id)!.comments).toHaveLength(0);
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatchObject({
        type: "run.signal",
        runId: "intake-linear",
        commandId: `ticket-write-failed:${attemptId}`,
        signal: { name: "ticket_write_failed", writeId: attemptId, attemptId, ticket, writes: [comment], tries: 2, error: { retryable: true } },
      });
      // Without an intake to tell (a run made without one): logged, nothing sent.
      await runTicketWork(item("ticket.update", "lone.ticket.update.x.1", { ticket, writes: [comment] }), { ...opts, updateTries: 1 });
      expect(sent).toHaveLength(1);
    } finally {
      linear.heal();
    }
  });

  it("the intake's own dispatch is tried once: written, it answers ticket_written; failing, ticket_write_failed for its attempt", async () => {
    const a = linear.addIssue({ title: "Again" });
    const ticket = { provider: "ticketing.linear", id: a.id, key: a.identifier };
    const comment = { kind: "comment", key: "g.stage.Implementing.1", body: "**Implementing**" };
    const payload = { ticket, writes: [comment], intake: "intake-linear", writeId: "tk-g.ticket.update.Implementing.1" };
    sent.length = 0;
    linear.fail(503, Infinity);
    const requests = linear.requests.length;
    await runTicketWork(item("ticket.update", "intake-linear.ticket.write.3", payload), opts);
    linear.heal();
    expect(linear.requests.length - requests).toBeGreaterThan(0);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      runId: "intake-linear",
      commandId: "ticket-write-failed:intake-linear.ticket.write.3",
      signal: { name: "ticket_write_failed", writeId: payload.writeId, attemptId: "intake-linear.ticket.write.3", tries: 1 },
    });
    await runTicketWork(item("ticket.update", "intake-linear.ticket.write.4", payload), opts);
    expect(linear.issues.get(a.id)!.comments).toHaveLength(1);
    expect(sent[1]).toMatchObject({
      runId: "intake-linear",
      commandId: "ticket-written:intake-linear.ticket.write.4",
      signal: { name: "ticket_written", writeId: payload.writeId, attemptId: "intake-linear.ticket.write.4" },
    });
  });

  it("a write the tracker refuses goes to the intake at once, not retryable", async () => {
    const a = linear.addIssue({ title: "Refused" });
    sent.length = 0;
    linear.fail(400, 1, { body: { errors: [{ message: "Argument Validation Error", extensions: { code: "INVALID_INPUT" } }] } });
    const requests = linear.requests.length;
    await runTicketWork(
      item("ticket.update", "r2.ticket.update.x.1", {
        ticket: { provider: "ticketing.linear", id: a.id, key: a.identifier },
        writes: [{ kind: "comment", key: "r2.c", body: "b" }],
        intake: "intake-linear",
      }),
      opts,
    );
    linear.heal();
    expect(linear.requests.length - requests).toBe(1);
    expect(sent).toEqual([
      expect.objectContaining({ signal: expect.objectContaining({ name: "ticket_write_failed", error: expect.objectContaining({ retryable: false }) }) }),
    ]);
  });

  it("the hub stopping mid-backoff hands the writes to the intake instead of waiting", async () => {
    const a = linear.addIssue({ title: "Stopping" });
    sent.length = 0;
    linear.fail(503, Infinity);
    const stop = new AbortController();
    const t0 = Date.now();
    const done = runTicketWork(
      item("ticket.update", "s.ticket.update.x.1", {
        ticket: { provider: "ticketing.linear", id: a.id, key: a.identifier },
        writes: [{ kind: "comment", key: "s.c", body: "b" }],
        intake: "intake-linear",
      }),
      { ...opts, signal: stop.signal, updateBackoffMs: 60_000 },
    );
    setTimeout(() => stop.abort(), 200);
    await done;
    linear.heal();
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(sent).toEqual([expect.objectContaining({ runId: "intake-linear", signal: expect.objectContaining({ name: "ticket_write_failed", tries: 1 }) })]);
  });
});

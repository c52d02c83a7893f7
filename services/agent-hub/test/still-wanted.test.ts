import { describe, expect, it } from "vitest";
import type { RunView, WorkItem } from "@orch/contracts";
import { stillWanted } from "../src/still-wanted.js";

/** What a redelivered or old work item is checked against before a hub runs it again. */

const view = (extra: Partial<RunView>): RunView => ({ steps: [], ...extra }) as unknown as RunView;
const item = (type: string, attemptId: string): WorkItem => ({ type, attemptId }) as unknown as WorkItem;

describe("stillWanted", () => {
  it("a step's attempt: while it is in flight", () => {
    const v = view({
      steps: [
        { attemptId: "r.s.1", inflight: true },
        { attemptId: "r.t.1", inflight: false },
      ] as never,
    });
    expect(stillWanted(v, item("agent", "r.s.1"))).toBe(true);
    expect(stillWanted(v, item("agent", "r.t.1"))).toBe(false);
    expect(stillWanted(v, item("agent", "r.u.1"))).toBe(false);
  });

  it("the merge queue's pr.update: while the run is updating with that attempt", () => {
    expect(stillWanted(view({ mergeQueue: { state: "updating", attemptId: "r.pr.update.2" } }), item("pr.update", "r.pr.update.2"))).toBe(true);
    expect(stillWanted(view({ mergeQueue: { state: "updating", attemptId: "r.pr.update.3" } }), item("pr.update", "r.pr.update.2"))).toBe(false);
    expect(stillWanted(view({ mergeQueue: { state: "checking" } }), item("pr.update", "r.pr.update.2"))).toBe(false);
    expect(stillWanted(view({}), item("pr.update", "r.pr.update.2"))).toBe(false);
  });

  it("the polling fallback's pr.sync: the latest one, while the PR is open", () => {
    const open = view({ pullRequest: { state: "open", sync: { attemptId: "r.pr.sync.4", at: 1 } } as never });
    expect(stillWanted(open, item("pr.sync", "r.pr.sync.4"))).toBe(true);
    expect(stillWanted(open, item("pr.sync", "r.pr.sync.3"))).toBe(false);
    expect(stillWanted(view({ pullRequest: { state: "merged", sync: { attemptId: "r.pr.sync.4", at: 1 } } as never }), item("pr.sync", "r.pr.sync.4"))).toBe(
      false,
    );
  });

  it("an intake's tickets.sync: the one in flight; a ticket's update: always (its writes are keyed)", () => {
    expect(stillWanted(view({ intake: { sync: { attemptId: "i.tickets.sync.3", at: 1 } } as never }), item("tickets.sync", "i.tickets.sync.3"))).toBe(true);
    expect(stillWanted(view({ intake: { sync: { attemptId: "i.tickets.sync.4", at: 1 } } as never }), item("tickets.sync", "i.tickets.sync.3"))).toBe(false);
    expect(stillWanted(view({ intake: {} as never }), item("tickets.sync", "i.tickets.sync.3"))).toBe(false);
    expect(stillWanted(view({}), item("ticket.update", "r.ticket.update.Done.1"))).toBe(true);
  });
});

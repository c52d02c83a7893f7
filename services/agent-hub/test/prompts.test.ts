import { describe, expect, it } from "vitest";
import type { WorkItem } from "@orch/contracts";
import { buildPrompt } from "../src/prompts.js";

/** What the agent is told about why an attempt runs: a reviewer's rework, or a failure to fix. */

const item = (extra: Partial<WorkItem> = {}): WorkItem => ({
  runId: "r1",
  projectId: "p",
  definition: { id: "protocol", version: 1 },
  stepId: "impl",
  attemptId: "r1.impl.2",
  attempt: 2,
  kind: "execute",
  index: 0,
  role: "implementer",
  type: "protocol.step",
  phase: "main",
  inputs: {},
  iteration: 0,
  rework: 0,
  mode: "mock",
  dispatchedAt: 1,
  ...extra,
});

describe("buildPrompt", () => {
  it("tells the agent what failed when an attempt was started to fix it", () => {
    const p = buildPrompt(item({ feedback: "CI failed on github (lint): failure" }), { cwd: "/w", structured: false });
    expect(p.user).toContain("## Why this attempt: what went wrong before (fix it)\nCI failed on github (lint): failure");
  });

  it("words a rework's feedback as the reviewer's", () => {
    const p = buildPrompt(item({ rework: 1, feedback: "name the endpoint" }), { cwd: "/w", structured: false });
    expect(p.user).toContain("## Rework 1: what the reviewer asked you to change\nname the endpoint");
    expect(p.user).not.toContain("Why this attempt");
  });

  it("says nothing of either without feedback", () => {
    const p = buildPrompt(item(), { cwd: "/w", structured: false });
    expect(p.user).not.toMatch(/Why this attempt|Rework/);
  });
});

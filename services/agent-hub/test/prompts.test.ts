import { describe, expect, it } from "vitest";
import { buildPrompt } from "../src/prompts.js";
import { workItem } from "./llm-helpers.js";

/** What the agent is told about why an attempt runs: a reviewer's rework, or a failure to fix. */

describe("buildPrompt", () => {
  it("tells the agent what failed when an attempt was started to fix it", () => {
    const p = buildPrompt(workItem({ feedback: "CI failed on github (lint): failure" }), { cwd: "/w", structured: false });
    expect(p.user).toContain("## Why this attempt: what went wrong before (fix it)\nCI failed on github (lint): failure");
  });

  it("words a rework's feedback as the reviewer's", () => {
    const p = buildPrompt(workItem({ rework: 1, feedback: "name the endpoint" }), { cwd: "/w", structured: false });
    expect(p.user).toContain("## Rework 1: what the reviewer asked you to change\nname the endpoint");
    expect(p.user).not.toContain("Why this attempt");
  });

  it("says nothing of either without feedback", () => {
    const p = buildPrompt(workItem(), { cwd: "/w", structured: false });
    expect(p.user).not.toMatch(/Why this attempt|Rework/);
  });
});

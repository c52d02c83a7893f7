import { execFileSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { AgentHubConfig, loadConfig } from "@orch/config";
import type { SessionEventInput, WorkItem } from "@orch/contracts";
import { createLogger, type Logger } from "@orch/logging";
import type { SessionContext } from "../src/executors/types.js";

/** Shared fixtures of the local LLM executor's tests: a real git worktree, a session context that records what it is told. */

export function hubConfig(env: Record<string, string>): AgentHubConfig {
  return loadConfig(AgentHubConfig, env);
}

export interface TestLogger {
  logger: Logger;
  lines: string[];
}

export function testLogger(): TestLogger {
  const lines: string[] = [];
  const logger = createLogger({ service: "agent-hub-test", level: "debug" }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  return { logger, lines };
}

/** A fresh `git init` repository in a temp directory (realpath'd, so symlinked /tmp does not matter). */
export function tempRepo(): { path: string; cleanup(): void } {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "orch-llm-")));
  const path = join(dir, "wt");
  execFileSync("git", ["init", "-q", path]);
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function workItem(over: Partial<WorkItem> = {}): WorkItem {
  return {
    runId: "run1",
    projectId: "_default",
    definition: { id: "def", version: 1 },
    stepId: "s1",
    attemptId: "run1.s1.1",
    attempt: 1,
    kind: "execute",
    index: 0,
    role: "implementer",
    type: "agent",
    phase: "implement",
    title: "Add a greeting",
    inputs: {},
    iteration: 0,
    rework: 0,
    mode: "live",
    goal: "say hello",
    dispatchedAt: 0,
    ...over,
  };
}

export interface TestContext extends SessionContext {
  events: SessionEventInput[];
  heartbeats: number;
  controller: AbortController;
  of(type: SessionEventInput["type"]): Array<Record<string, unknown>>;
}

export function sessionContext(
  worktree: string,
  over: { item?: Partial<WorkItem>; model?: string; logger?: Logger; onEmit?: (e: SessionEventInput) => void } = {},
): TestContext {
  const controller = new AbortController();
  const events: SessionEventInput[] = [];
  const ctx: TestContext = {
    item: workItem(over.item),
    sessionId: "sess1",
    worktree: { path: worktree, branch: "orch/s1", base: "HEAD", repo: worktree },
    ...(over.model ? { model: over.model } : {}),
    signal: controller.signal,
    logger: over.logger ?? testLogger().logger,
    emit(e) {
      events.push(e);
      over.onEmit?.(e);
    },
    heartbeat() {
      ctx.heartbeats++;
    },
    registerProcess() {},
    events,
    heartbeats: 0,
    controller,
    of: (type) => events.filter((e) => e.type === type).map((e) => e.data),
  };
  return ctx;
}

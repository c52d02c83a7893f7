import type { WebhookDefinition } from "@octokit/webhooks-examples";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

// The package is a JSON file (its `main`), so it is required, not imported.
const examples = createRequire(import.meta.url)("@octokit/webhooks-examples") as WebhookDefinition[];

/** GitHub's own example payloads (@octokit/webhooks-examples), by event name and index. */
export function githubExample(event: string, index: number): Record<string, unknown> {
  const def = examples.find((d) => d.name === event);
  const ex = def?.examples[index];
  if (!ex) throw new Error(`no example ${event}[${index}] in @octokit/webhooks-examples`);
  return structuredClone(ex) as unknown as Record<string, unknown>;
}

export function githubExamples(): { event: string; index: number; body: Record<string, unknown> }[] {
  return examples.flatMap((d) => d.examples.map((ex, index) => ({ event: d.name, index, body: structuredClone(ex) as unknown as Record<string, unknown> })));
}

/** GitLab's documented example payloads, copied into fixtures/gitlab (see its README). */
export function gitlabFixture(name: "push" | "merge_request" | "pipeline" | "job" | "note"): Record<string, unknown> {
  return JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "gitlab", `${name}.json`), "utf8")) as Record<string, unknown>;
}

export const GITLAB_EVENT_HEADER = {
  push: "Push Hook",
  merge_request: "Merge Request Hook",
  pipeline: "Pipeline Hook",
  job: "Job Hook",
  note: "Note Hook",
} as const;

/** A nested record inside a payload, for tests that derive a variant of an example. */
export function at(body: Record<string, unknown>, ...path: string[]): Record<string, unknown> {
  let o: unknown = body;
  for (const k of path) o = (o as Record<string, unknown>)[k];
  return o as Record<string, unknown>;
}

import type { WorkItem } from "@orch/contracts";

/**
 * What a step is asked to produce, and where in the repository it goes: one answer shared by the
 * prompts every model sees and by the stub executor, which writes exactly that without a model.
 *
 * - SpecKit (seed 002): `specs/<feature_id>/spec.md` (specify), `research.md` + `plan.md` (plan),
 *   `tasks.md` (tasks), a code change and then its tests (implement), as GitHub's spec-kit lays out.
 * - Tickets (seed 003): a plan in `plans/<ticket>.md`, a code change with a test, a test report, a
 *   pull request description in `.orchestrator/pull-requests/<ticket>.md`.
 * - Protocols (seed 004): the plan in `protocols/<name>/plan.md`, listing the steps to add.
 * - Tasks (seed 001) and anything else: by role.
 * - QA: a report in `.orchestrator/qa/<step>.md`.
 */

export type ArtifactKind = "document" | "code" | "tests" | "review" | "plan" | "report" | "pull_request";

export interface Artifact {
  kind: ArtifactKind;
  /** Where the main file goes, relative to the worktree. */
  path: string;
  /** What to call it in a prompt or a commit. */
  title: string;
  /** What the agent is asked to do. */
  instructions: string;
}

/** Lowercase `[a-z0-9-]`, at most `max` chars: safe in a path. */
export function slug(s: string, max = 40): string {
  const out = s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, max)
    .replace(/-+$/, "");
  return out || "item";
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v.trim() ? v.trim() : undefined);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** The ticket's key or title, from a ticket run's input. */
function ticketName(item: WorkItem): string {
  const t = obj(item.inputs.ticket);
  return slug(str(t.key) ?? str(t.id) ?? str(t.identifier) ?? str(t.title) ?? item.runId, 60);
}

export function featureId(item: WorkItem): string {
  return slug(str(item.inputs.feature_id) ?? str(item.inputs.feature_description) ?? str(item.goal) ?? item.runId, 60);
}

export function artifactFor(item: WorkItem): Artifact {
  const payload = obj(item.payload);
  if (item.kind === "qa") {
    return {
      kind: "report",
      path: `.orchestrator/qa/${slug(item.stepId)}.md`,
      title: `QA of ${item.stepId}`,
      instructions: "Check the step's output against what it was asked to do; pass or fail it, with reasons.",
    };
  }
  if (item.kind === "plan" || item.type === "protocol.plan") {
    const name = slug(str(obj(item.inputs.protocol).protocol_name) ?? str(obj(item.inputs.protocol).name) ?? item.runId);
    return {
      kind: "plan",
      path: `protocols/${name}/plan.md`,
      title: `plan for ${name}`,
      instructions: "Plan the work as an ordered list of steps (id, title, role), and write the plan down.",
    };
  }
  if (item.type.startsWith("speckit.")) {
    const dir = `specs/${featureId(item)}`;
    const a = str(payload.artifact) ?? "spec.md";
    if (a === "code")
      return {
        kind: "code",
        path: "src",
        title: "the implementation",
        instructions: `Implement the tasks in ${dir}/tasks.md: change the code and add a test for it.`,
      };
    if (a === "tests")
      return {
        kind: "tests",
        path: "test",
        title: "the tests",
        instructions: `Test and verify the implementation of ${dir}: add or extend tests, and report what passes.`,
      };
    const what: Record<string, string> = {
      "spec.md": "the feature specification: user stories, functional requirements, acceptance criteria",
      "research.md": "the research and technical context: options, decisions, constraints",
      "plan.md": "the implementation plan: architecture, data model, phases",
      "tasks.md": "the task breakdown: numbered, ordered tasks with the files they touch",
    };
    return { kind: "document", path: `${dir}/${a}`, title: a, instructions: `Write ${what[a] ?? a} to ${dir}/${a}.` };
  }
  if (item.type.startsWith("ticket.")) {
    const t = ticketName(item);
    switch (item.type) {
      case "ticket.plan":
        return { kind: "plan", path: `plans/${t}.md`, title: `plan for ${t}`, instructions: `Plan the ticket's implementation and write it to plans/${t}.md.` };
      case "ticket.test":
        return {
          kind: "report",
          path: `.orchestrator/test-reports/${t}.md`,
          title: `test report for ${t}`,
          instructions: "Run the tests and report the results.",
        };
      case "ticket.draft_pr":
        return {
          kind: "pull_request",
          path: `.orchestrator/pull-requests/${t}.md`,
          title: `pull request for ${t}`,
          instructions: "Write the draft pull request's title and description.",
        };
      default:
        return { kind: "code", path: "src", title: `the change for ${t}`, instructions: "Implement the ticket: change the code and add a test for it." };
    }
  }
  switch (item.role) {
    case "architect":
      return {
        kind: "document",
        path: `docs/design/${slug(item.title ?? item.stepId)}.md`,
        title: "the design",
        instructions: "Write the design for the task.",
      };
    case "reviewer":
      return {
        kind: "review",
        path: `.orchestrator/reviews/${slug(item.stepId)}.md`,
        title: "the review",
        instructions: "Review the change and write your findings.",
      };
    case "tester":
      return { kind: "tests", path: "test", title: "the tests", instructions: "Add tests for the change and report what passes." };
    case "maintainer":
      return {
        kind: "document",
        path: `.orchestrator/maintenance/${slug(item.stepId)}.md`,
        title: "the maintenance notes",
        instructions: "Do the maintenance the task asks for and note what changed.",
      };
    default:
      return { kind: "code", path: "src", title: "the change", instructions: "Do what the task asks: change the code and add a test for it." };
  }
}

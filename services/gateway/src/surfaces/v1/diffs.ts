import { ErrorCode, OrchError, StepDiffErrorCode } from "@orch/contracts";
import { requestStepDiff, StepDiffError } from "@orch/runs";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { route } from "../../routing.js";
import { ERRORS, IdParam, loadRun, type V1 } from "./common.js";

/**
 * `GET /api/v1/runs/{id}/steps/{stepId}/diff`: what a step's attempt committed, as a patch per
 * file: what a gate asks a person to approve. The repositories live with the agent hubs, so the
 * gateway checks the run, the step and the caller's access, then asks a hub over NATS
 * (@orch/contracts `diffs.ts`); it runs no git itself.
 */

const DiffParams = z.object({ id: IdParam, stepId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must match [A-Za-z0-9_-]{1,64}") });

const DiffFileJson = z.object({
  path: z.string(),
  change: z.enum(["add", "modify", "delete"]),
  additions: z.int(),
  deletions: z.int(),
  binary: z.boolean().optional(),
  patch: z.string().describe("The file's unified diff from its `diff --git` line; cut short with a closing note when `truncated`"),
  truncated: z.boolean().optional(),
});

const StepDiffJson = z.object({
  stepId: z.string(),
  attempt: z.int(),
  commits: z.array(z.object({ sha: z.string(), message: z.string(), branch: z.string(), files: z.array(DiffFileJson), truncated: z.boolean().optional() })),
  truncated: z.boolean().describe("Some patch text was left out (512 KB in all, 128 KB per file)"),
});

/** The hub's refusals in our vocabulary (and so their HTTP statuses). */
const CODE_OF: Record<StepDiffErrorCode, ErrorCode> = {
  [StepDiffErrorCode.NotFound]: ErrorCode.NotFound,
  [StepDiffErrorCode.BadRequest]: ErrorCode.BadRequest,
  [StepDiffErrorCode.GitError]: ErrorCode.GitError,
  [StepDiffErrorCode.Unavailable]: ErrorCode.Unavailable,
};

export function diffRoutes(app: FastifyInstance, { opts }: V1): void {
  route(
    app,
    {
      method: "GET",
      url: "/runs/:id/steps/:stepId/diff",
      operationId: "v1StepDiff",
      tags: ["runs"],
      summary: "What a step's attempt committed, as a patch per file",
      description: [
        "The commits the step's sessions made in that attempt (default: the step's current one), read by an agent hub",
        "from the project's repository: each with its message, branch and files (`change`, `additions`, `deletions`, `patch`).",
        "Secret values the hub knows are redacted. Bounded: 128 KB of patch per file and 512 KB in all; what is cut says so",
        "(`truncated`, and a note ending the file's patch). 404 when the step has no commit in that attempt;",
        "502 `GIT_ERROR` when git fails; 503 `UNAVAILABLE` when no agent hub answers.",
      ].join("\n"),
      params: DiffParams,
      query: z.object({ attempt: z.coerce.number().int().min(0).max(1_000_000).optional().describe("The attempt (default: the step's current one)") }),
      projectScoped: true,
      responses: {
        200: { description: "The step's diff", schema: StepDiffJson },
        ...ERRORS,
        404: { description: "No such run or step, or no commit in that attempt" },
        502: { description: "`GIT_ERROR`: git failed on the agent hub's repository" },
        503: { description: "`UNAVAILABLE`: no agent hub answered" },
      },
    },
    async (req, _reply, { params, query }) => {
      const run = await loadRun(opts, req, params.id);
      const step = run.steps.find((s) => s.id === params.stepId);
      if (!step) throw new OrchError(ErrorCode.NotFound, `run ${run.runId} has no step ${params.stepId}`);
      const attempt = query.attempt ?? step.attempt;
      try {
        const diff = await requestStepDiff(opts.bus, { runId: run.runId, stepId: step.id, attempt });
        return { stepId: diff.stepId, attempt: diff.attempt, commits: diff.commits, truncated: diff.truncated };
      } catch (err) {
        if (err instanceof StepDiffError) throw new OrchError(CODE_OF[err.code], err.message);
        throw err;
      }
    },
  );
}

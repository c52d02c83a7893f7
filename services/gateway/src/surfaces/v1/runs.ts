import { newRunId } from "@orch/bus";
import { DEFAULT_PROJECT, ErrorCode, OrchError, RUN_STATUSES, SIGNAL_NAMES, SignalSchema, type RunStatus, type Signal } from "@orch/contracts";
import { missingSteps, type CompiledDefinition } from "@orch/engine";
import { DefinitionNotFoundError, PendingError } from "@orch/runs";
import type { RunView } from "@orch/contracts";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { route, ValidationError } from "../../routing.js";
import {
  actorOf,
  checkProject,
  ERRORS,
  EventJson,
  eventJson,
  IdParam,
  listOf,
  listParam,
  loadRun,
  RunJson,
  runJson,
  withQueuePosition,
  RunSummaryJson,
  StepJson,
  stepJson,
  summaryJson,
  tokenProject,
  type V1,
} from "./common.js";

const TAGS = ["runs"];
const Json = z.record(z.string(), z.unknown());
const DEF_REF = /^([a-z0-9][a-z0-9._-]{0,127}?)(?:@(\d{1,9}))?$/;

const CreateRun = z.strictObject({
  definition: z
    .union([
      z.string().regex(DEF_REF, "must be a definition id, optionally with @version"),
      z.strictObject({ id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/), version: z.int().min(1).optional() }),
    ])
    .describe("`speckit.specify`, `speckit.specify@1`, or `{id, version?}` (default: the latest version)"),
  projectId: IdParam.optional().describe(`Default: ${DEFAULT_PROJECT}`),
  title: z.string().max(500).optional(),
  labels: z.record(z.string().max(64), z.string().max(256)).optional().describe("Small indexed key/values (filter with `?label=k:v`)"),
  input: Json.optional(),
  steps: z.array(Json).max(1_000).optional().describe("Steps the run brings (definitions with dynamic steps)"),
  facts: Json.optional(),
  limits: Json.optional(),
  budgets: z.array(Json).max(100).optional(),
  autoStart: z.boolean().optional().describe("Default true; false leaves the run pending until the `start` action"),
});

const Accepted = z.object({
  id: z.string(),
  projectId: z.string(),
  definition: z.object({ id: z.string(), version: z.int().optional() }),
  status: z.literal("pending"),
  accepted: z.literal(true),
});

const RunParams = z.object({ id: IdParam });
const StepParams = z.object({ id: IdParam, stepId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must match [A-Za-z0-9_-]{1,64}") });

/** Step actions → the engine's signals. */
const STEP_ACTIONS = {
  run: "run_step",
  run_qa: "run_qa",
  approve: "approve",
  reject: "reject",
  complete: "complete_step",
  fail: "fail_step",
  skip: "skip_step",
} as const;
type StepAction = keyof typeof STEP_ACTIONS;

const ReasonBody = z.looseObject({ reason: z.string().max(10_000).optional() }).optional();

const ApprovalJson = z.object({
  runId: z.string(),
  projectId: z.string(),
  definition: z.object({ id: z.string(), version: z.int() }),
  runTitle: z.string().optional(),
  step: StepJson,
});

/** Run statuses in which a step can wait for an approval. */
const LIVE: RunStatus[] = ["running", "paused", "blocked", "waiting", "planning", "planned"];

export function runRoutes(app: FastifyInstance, { opts, defaults }: V1): void {
  const { runs } = opts;

  /** Validates a signal as the engine will (fields are reported without the name, which is the URL's). */
  function parseSignal(name: string, fields: Record<string, unknown>): Signal {
    const r = SignalSchema.safeParse({ ...fields, name });
    if (r.success) return r.data;
    throw new ValidationError(
      "body",
      r.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message, code: i.code })),
      r.error,
    );
  }

  /** Sends the signal; answers the run (200) or, when the core has not answered yet, 202. */
  async function act(req: FastifyRequest, reply: FastifyReply, run: RunView, signal: Signal, reason: string | undefined) {
    const who = actorOf(req, reason);
    try {
      const after = await runs.signal(run.runId, signal, who);
      req.log.info({ runId: run.runId, action: signal.name, actor: who.actor }, "run action applied");
      return reply.send(runJson(after));
    } catch (err) {
      if (err instanceof PendingError) return reply.status(202).send({ id: run.runId, action: signal.name, accepted: true });
      throw err;
    }
  }

  const splitReason = (body: Record<string, unknown> | undefined) => {
    const { reason, ...fields } = body ?? {};
    return { reason: typeof reason === "string" ? reason : undefined, fields };
  };

  route(
    app,
    {
      method: "POST",
      url: "/runs",
      operationId: "v1CreateRun",
      tags: TAGS,
      summary: "Start a run of a definition",
      description: [
        "Answers once the core has created the run: 201 with it. When the core has not answered in time the",
        "create command is already stored and the run will be created: 202. With `Idempotency-Key` the same key",
        "always names the same run: a repeat answers 200 with the run it created.",
      ].join("\n"),
      json: true,
      body: CreateRun,
      headers: { "Idempotency-Key": "Same key, same run (created once)", "X-Actor": "Who is asking (recorded in the run's events)" },
      projectScoped: true,
      responses: {
        200: { description: "The run this Idempotency-Key created before", schema: RunJson },
        201: { description: "Created", schema: RunJson },
        202: { description: "Stored; the core will create it", schema: Accepted },
        ...ERRORS,
        413: { description: "Body too large" },
        415: { description: "Not JSON" },
        429: { description: "Rate limited" },
      },
    },
    async (req, reply, { body }) => {
      const projectId = body.projectId ?? DEFAULT_PROJECT;
      await checkProject(opts, req, projectId);
      let ref: { id: string; version?: number };
      if (typeof body.definition === "string") {
        const m = DEF_REF.exec(body.definition)!;
        ref = { id: m[1]!, ...(m[2] ? { version: Number(m[2]) } : {}) };
      } else ref = body.definition;
      let cd: CompiledDefinition;
      try {
        cd = await runs.definitions.get(ref);
      } catch (err) {
        if (!(err instanceof DefinitionNotFoundError)) throw err;
        throw new ValidationError("body", [{ path: "definition", message: err.message, code: "custom" }]);
      }
      // The engine's rule, checked here too so the answer names the field (the core refuses it anyway).
      const missing = missingSteps(cd, body.steps);
      if (missing) throw new ValidationError("body", [{ path: "steps", message: missing, code: "custom" }]);
      const who = actorOf(req);
      const key = who.idempotencyKey ? `api-v1:${who.idempotencyKey}` : undefined;
      if (key) {
        const existing = await runs.get(newRunId(key));
        if (existing) return reply.status(200).header("location", `/api/v1/runs/${existing.runId}`).send(runJson(existing));
      }
      const created = await runs.create(
        {
          projectId,
          definition: ref,
          ...(body.title !== undefined ? { title: body.title } : {}),
          ...(body.labels ? { labels: body.labels } : {}),
          ...(body.input ? { input: body.input } : {}),
          ...(body.steps ? { steps: body.steps } : {}),
          ...(body.facts ? { facts: body.facts } : {}),
          ...(body.limits ? { limits: body.limits } : {}),
          ...(body.budgets ? { budgets: body.budgets } : {}),
          ...(body.autoStart !== undefined ? { autoStart: body.autoStart } : {}),
          ...(key ? { idempotencyKey: key } : {}),
        },
        { actor: who.actor, correlationId: req.id },
      );
      if ("accepted" in created) {
        return reply
          .status(202)
          .header("location", `/api/v1/runs/${created.runId}`)
          .send({ id: created.runId, projectId: created.projectId, definition: created.definition, status: "pending", accepted: true });
      }
      req.log.info({ runId: created.runId, definition: `${created.definition.id}@${created.definition.version}` }, "run created");
      return reply.status(201).header("location", `/api/v1/runs/${created.runId}`).send(runJson(created));
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/runs",
      operationId: "v1ListRuns",
      tags: TAGS,
      summary: "Runs, newest first",
      description: "Every run, whichever surface created it (a seed 000 job, a seed 004 protocol, …). Filters combine.",
      query: z.object({
        projectId: IdParam.optional(),
        status: listParam(RUN_STATUSES).describe("Repeat it or give a comma list: `?status=running,paused`"),
        definition: z.string().max(128).optional().describe("A definition id"),
        view: z.string().max(32).optional().describe("job, speckit, protocol, task, ticket, …"),
        label: listParam().describe("`key:value`, repeatable"),
        limit: z.coerce.number().int().min(1).max(500).default(50),
        cursor: z.string().max(512).optional().describe("The `nextCursor` of the previous page"),
      }),
      projectScoped: true,
      responses: { 200: { description: "A page of runs", schema: listOf(RunSummaryJson) }, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403] },
    },
    async (req, _reply, { query }) => {
      const labels: Record<string, string> = {};
      for (const l of query.label) {
        const i = l.indexOf(":");
        if (i <= 0) throw new ValidationError("query", [{ path: "label", message: `'${l}' is not key:value`, code: "custom" }]);
        labels[l.slice(0, i)] = l.slice(i + 1);
      }
      const projectId = query.projectId ?? tokenProject(req);
      if (projectId) await checkProject(opts, req, projectId);
      const page = await runs.list({
        ...(projectId ? { projectId } : {}),
        ...(query.status.length ? { status: [...new Set(query.status)] } : {}),
        ...(query.definition ? { definitionId: query.definition } : {}),
        ...(query.view ? { view: query.view } : {}),
        ...(Object.keys(labels).length ? { labels } : {}),
        limit: query.limit,
        ...(query.cursor ? { cursor: query.cursor } : {}),
      });
      return { items: page.runs.map(summaryJson), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}), total: page.total };
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/runs/:id",
      operationId: "v1GetRun",
      tags: TAGS,
      summary: "A run with its steps",
      params: RunParams,
      projectScoped: true,
      responses: { 200: { description: "The run", schema: RunJson }, ...ERRORS },
    },
    async (req, _reply, { params }) => runJson(await withQueuePosition(runs, await loadRun(opts, req, params.id))),
  );

  route(
    app,
    {
      method: "GET",
      url: "/runs/:id/history",
      operationId: "v1RunHistory",
      tags: TAGS,
      summary: "Every event of a run, oldest first",
      params: RunParams,
      projectScoped: true,
      responses: { 200: { description: "The run's events", schema: listOf(EventJson) }, ...ERRORS },
    },
    async (req, _reply, { params }) => {
      await loadRun(opts, req, params.id);
      const items = (await runs.history(params.id)).map(eventJson);
      return { items, total: items.length };
    },
  );

  route(
    app,
    {
      method: "POST",
      url: "/runs/:id/actions/:name",
      operationId: "v1RunAction",
      tags: TAGS,
      summary: "Act on a run: any engine action",
      description: [
        `Actions: ${SIGNAL_NAMES.map((n) => `\`${n}\``).join(", ")}. The optional JSON body carries the action's fields`,
        "(`stepId`, `revision`, `output`, `error`, `facts`, `tokens`, `steps`, `trigger`, …) and an optional `reason`",
        "(or `X-Reason`); `X-Actor` names who acts. 409 `ILLEGAL_TRANSITION` when the run cannot do it now",
        "(`details.reason` is the engine's: ILLEGAL_TRANSITION, GUARD_FAILED, TERMINAL_STATE), 409 `CONFLICT` for a stale",
        "`revision`. 202 when the core has not answered yet (the action is stored and will be applied).",
      ].join("\n"),
      params: RunParams.extend({ name: z.enum(SIGNAL_NAMES) }),
      body: ReasonBody,
      headers: { "X-Actor": "Who acts", "X-Reason": "Why", "Idempotency-Key": "The same key applies the action once" },
      projectScoped: true,
      responses: {
        200: { description: "The run after the action", schema: RunJson },
        202: { description: "Stored; the core will apply it" },
        ...ERRORS,
        409: { description: "Refused: ILLEGAL_TRANSITION, or CONFLICT for a stale revision" },
      },
    },
    async (req, reply, { params, body }) => {
      const { reason, fields } = splitReason(body);
      const signal = parseSignal(params.name, fields);
      const run = await loadRun(opts, req, params.id);
      return act(req, reply, run, signal, reason);
    },
    defaults,
  );

  // ── steps ────────────────────────────────────────────────────────────────────────────────────

  route(
    app,
    {
      method: "GET",
      url: "/runs/:id/steps",
      operationId: "v1ListSteps",
      tags: TAGS,
      summary: "A run's steps in order (the planning step first, when it has one)",
      params: RunParams,
      projectScoped: true,
      responses: { 200: { description: "Steps", schema: listOf(StepJson) }, ...ERRORS },
    },
    async (req, _reply, { params }) => {
      const run = await loadRun(opts, req, params.id);
      return { items: run.steps.map((s) => stepJson(run.runId, s)), total: run.steps.length };
    },
  );

  const findStep = (run: RunView, stepId: string) => {
    const s = run.steps.find((x) => x.id === stepId);
    if (!s) throw new OrchError(ErrorCode.NotFound, `run ${run.runId} has no step ${stepId}`);
    return s;
  };

  route(
    app,
    {
      method: "GET",
      url: "/runs/:id/steps/:stepId",
      operationId: "v1GetStep",
      tags: TAGS,
      summary: "One step: status, attempt, retries, reworks, revision, output, error, usage",
      params: StepParams,
      projectScoped: true,
      responses: { 200: { description: "The step", schema: StepJson }, ...ERRORS },
    },
    async (req, _reply, { params }) => {
      const run = await loadRun(opts, req, params.id);
      return stepJson(run.runId, findStep(run, params.stepId));
    },
  );

  const stepAction = async (
    req: FastifyRequest,
    reply: FastifyReply,
    params: { id: string; stepId: string },
    action: StepAction,
    body: Record<string, unknown> | undefined,
  ) => {
    const { reason, fields } = splitReason(body);
    const signal = parseSignal(STEP_ACTIONS[action], { ...fields, stepId: params.stepId });
    const run = await loadRun(opts, req, params.id);
    findStep(run, params.stepId);
    return act(req, reply, run, signal, reason);
  };

  route(
    app,
    {
      method: "POST",
      url: "/runs/:id/steps/:stepId/actions/:action",
      operationId: "v1StepAction",
      tags: TAGS,
      summary: "Act on a step: run, run_qa, approve, reject, complete, fail, skip",
      description: [
        "Optional JSON body with the action's fields: approve `{revision?, force?, output?}`, reject `{revision?}`,",
        "complete `{output?}`, fail `{error, block?}`; any action takes `reason`. A `revision` that is not the",
        "step's current one is 409 `CONFLICT`; an action the step cannot take now is 409 `ILLEGAL_TRANSITION`.",
      ].join("\n"),
      params: StepParams.extend({ action: z.enum(Object.keys(STEP_ACTIONS) as [StepAction, ...StepAction[]]) }),
      body: ReasonBody,
      headers: { "X-Actor": "Who acts", "X-Reason": "Why" },
      projectScoped: true,
      responses: {
        200: { description: "The run after the action", schema: RunJson },
        202: { description: "Stored; the core will apply it" },
        ...ERRORS,
        409: { description: "Refused: ILLEGAL_TRANSITION, or CONFLICT for a stale revision" },
      },
    },
    async (req, reply, { params, body }) => stepAction(req, reply, params, params.action, body),
    defaults,
  );

  // ── approvals ────────────────────────────────────────────────────────────────────────────────

  route(
    app,
    {
      method: "GET",
      url: "/approvals",
      operationId: "v1ListApprovals",
      tags: TAGS,
      summary: "Steps waiting for a human approval, across runs",
      description: "Oldest run first. Approve or reject one with its `revision`.",
      query: z.object({ projectId: IdParam.optional() }),
      projectScoped: true,
      responses: { 200: { description: "Waiting steps", schema: listOf(ApprovalJson) }, 400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403] },
    },
    async (req, _reply, { query }) => {
      const projectId = query.projectId ?? tokenProject(req);
      if (projectId) await checkProject(opts, req, projectId);
      const summaries = await runs.listAll({ ...(projectId ? { projectId } : {}), status: LIVE }, 5_000);
      const items: z.infer<typeof ApprovalJson>[] = [];
      for (const s of summaries.reverse()) {
        const run = await runs.get(s.runId);
        if (!run) continue;
        for (const step of run.steps) {
          if (step.status !== "waiting_approval") continue;
          items.push({
            runId: run.runId,
            projectId: run.projectId,
            definition: run.definition,
            ...(run.title !== undefined ? { runTitle: run.title } : {}),
            step: stepJson(run.runId, step) as z.infer<typeof StepJson>,
          });
        }
      }
      return { items, total: items.length };
    },
  );

  for (const action of ["approve", "reject"] as const) {
    route(
      app,
      {
        method: "POST",
        url: `/runs/:id/steps/:stepId/${action}`,
        operationId: action === "approve" ? "v1ApproveStep" : "v1RejectStep",
        tags: TAGS,
        summary: action === "approve" ? "Approve a step's output" : "Reject a step's output (it is reworked, or fails past its rework limit)",
        description: "Pass the `revision` you reviewed (from GET): if the output changed since, 409 `CONFLICT`.",
        params: StepParams,
        body: z
          .strictObject({
            revision: z.string().max(100).optional(),
            reason: z.string().max(10_000).optional(),
            ...(action === "approve" ? { force: z.boolean().optional() } : {}),
          })
          .optional(),
        headers: { "X-Actor": "Who decides" },
        projectScoped: true,
        responses: {
          200: { description: "The run after the decision", schema: RunJson },
          202: { description: "Stored; the core will apply it" },
          ...ERRORS,
          409: { description: "CONFLICT: stale revision; ILLEGAL_TRANSITION: the step is not waiting for approval" },
        },
      },
      async (req, reply, { params, body }) => stepAction(req, reply, params, action, body),
      defaults,
    );
  }
}

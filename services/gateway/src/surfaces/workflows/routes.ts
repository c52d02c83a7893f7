import { createHash, randomUUID } from "node:crypto";
import type { FeedEvent } from "@orch/bus";
import { RunEventType, type RunEvent, type Signal } from "@orch/contracts";
import { RefusedError, type AcceptedRun } from "@orch/runs";
import type { RunView } from "@orch/contracts";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Surface } from "../../context.js";
import { echoInput, JsonTooDeepError, toHttp } from "../../errors.js";
import { route, ValidationError } from "../../routing.js";

/**
 * Seed 002, the SpecKit workflow orchestrator: `/workflows`. A workflow is a run of the built-in
 * definition `speckit.<type>` (two phases, each behind a human approval); this surface only
 * translates the seed's vocabulary (statuses, triggers, phases, feature ids, history rows) to and
 * from the runs API. Errors are the seed's `{"error":{"code","message","details"?}}`, except body
 * validation, which is FastAPI's 422 `{"detail":[{type, loc, msg, input, ctx?}]}` as its clients
 * expect.
 */

const WORKFLOW_TYPES = ["specify", "plan", "tasks", "implement"] as const;
type WorkflowType = (typeof WORKFLOW_TYPES)[number];
const STATUSES = ["pending", "in_progress", "waiting_approval", "completed", "failed"] as const;
type SeedStatus = (typeof STATUSES)[number];
const TRIGGERS = ["agent_complete", "human_approved", "human_rejected"] as const;
type Trigger = (typeof TRIGGERS)[number];
/** Every trigger a history row can name (start, error and cancel happen without a client's advance). */
const HISTORY_TRIGGERS = ["start", ...TRIGGERS, "error", "cancel"] as const;

const DEFINITION_PREFIX = "speckit.";
const SLUG_MAX = 30;
const TITLE_MAX = 500;

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** A UUID in its canonical form (lowercase, hyphenated), or null when it is not one. */
export function canonicalUuid(s: string): string | null {
  if (!UUID.test(s)) return null;
  const h = s.replace(/-/g, "").toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The description's slug in a feature id: lowercase, runs of anything but [a-z0-9] as one `-`, cut to 30. */
export function featureSlug(description: string): string {
  const s = description
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, SLUG_MAX)
    .replace(/-+$/, "");
  return s || "feature";
}

/** `001-add-user-authentication-with-o`: the feature number (3 digits at least) and the slug. */
export function featureIdOf(n: number, description: string): string {
  return `${String(n).padStart(3, "0")}-${featureSlug(description)}`;
}

// ── schemas ─────────────────────────────────────────────────────────────────────────────────────

const JsonObject = z.record(z.string(), z.unknown());

const CreateBody = z.object({
  workflow_type: z.string().describe("`specify`, `plan`, `tasks` or `implement` (another value: 400 INVALID_WORKFLOW_TYPE)"),
  feature_description: z.string().min(10).describe("What the feature is; at least 10 characters"),
  context: JsonObject.nullable().optional().describe("Anything the agents should know (given to every phase)"),
});

const AdvanceBody = z.object({
  trigger: z.string().describe("`agent_complete`, `human_approved` or `human_rejected` (another value: 400 INVALID_TRIGGER)"),
  phase_result: JsonObject.nullable()
    .optional()
    .describe(
      "agent_complete: the phase's output; human_approved: replaces the phase's output (after phase_2 it is the workflow's result); human_rejected: its `reason`, `feedback` or `comment` goes to the agent",
    ),
});

const IdParams = z.object({ id: z.string().describe("The workflow's id (a UUID)") });

const Workflow = z.object({
  id: z.uuid(),
  workflow_type: z.enum(WORKFLOW_TYPES),
  status: z.enum(STATUSES),
  feature_id: z.string().nullable().describe("`001-add-user-authentication-with-o`: the feature's number and a slug of its description (its git branch)"),
  current_phase: z.enum(["phase_1", "phase_2"]).nullable(),
  result: z.unknown().describe("Once completed: the last phase_result (or phase_2's output); else null"),
  error: z.string().nullable(),
  created_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
  completed_at: z.iso.datetime().nullable(),
});
type Workflow = z.infer<typeof Workflow>;

const HistoryRow = z.object({
  id: z.uuid().describe("Stable: derived from the workflow and the event it was read from"),
  workflow_id: z.uuid(),
  from_status: z.enum(STATUSES),
  to_status: z.enum(STATUSES),
  trigger: z.enum(HISTORY_TRIGGERS),
  metadata: JsonObject.nullable().describe("The phase, and what the event says: actor, reason, revision, rework, error, run_seq"),
  created_at: z.iso.datetime(),
});
type HistoryRow = z.infer<typeof HistoryRow>;

const SeedError = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) });
const FastApiValidation = z.object({
  detail: z.array(
    z.object({ type: z.string(), loc: z.array(z.union([z.string(), z.int()])), msg: z.string(), input: z.unknown(), ctx: JsonObject.optional() }),
  ),
});

// ── errors ──────────────────────────────────────────────────────────────────────────────────────

/** An error in the seed's own words: its code, status and details. */
class Seed002Error extends Error {
  override name = "Seed002Error";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
  body() {
    return { error: { code: this.code, message: this.message, ...(this.details !== undefined ? { details: this.details } : {}) } };
  }
}

const notFound = (id: string) => new Seed002Error(404, "WORKFLOW_NOT_FOUND", `Workflow ${id} not found`, { workflow_id: id });

/** A body FastAPI could not decode: its 422 `json_invalid`. */
class JsonDecodeError extends Error {
  override name = "JsonDecodeError";
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
  }
}

interface PydanticError {
  type: string;
  loc: (string | number)[];
  msg: string;
  input: unknown;
  ctx?: Record<string, unknown>;
}

const valueAt = (v: unknown, path: PropertyKey[]): unknown => {
  let cur = v;
  for (const k of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
};

/** zod's issues as pydantic v2 reports them through FastAPI (`loc` starts with "body"; a long `input` cut short). */
export function pydanticErrors(err: z.ZodError, body: unknown): PydanticError[] {
  const errors = err.issues.map((i): PydanticError => {
    const path = i.path.filter((p): p is string | number => typeof p !== "symbol");
    const loc: (string | number)[] = ["body", ...path];
    const input = valueAt(body, path);
    if (input === undefined || (path.length === 0 && input === null)) {
      return { type: "missing", loc, msg: "Field required", input: path.length === 0 ? null : (valueAt(body, path.slice(0, -1)) ?? null) };
    }
    if (i.code === "too_small" && i.origin === "string") {
      const min = Number(i.minimum);
      return { type: "string_too_short", loc, msg: `String should have at least ${min} character${min === 1 ? "" : "s"}`, input, ctx: { min_length: min } };
    }
    if (i.code === "invalid_type") {
      if (path.length === 0) return { type: "model_attributes_type", loc, msg: "Input should be a valid dictionary or object to extract fields from", input };
      if (i.expected === "string") return { type: "string_type", loc, msg: "Input should be a valid string", input };
      if (i.expected === "record" || i.expected === "object") return { type: "dict_type", loc, msg: "Input should be a valid dictionary", input };
    }
    return { type: "value_error", loc, msg: i.message, input };
  });
  return errors.map((e) => ({ ...e, input: echoInput(e.input) }));
}

// ── views ───────────────────────────────────────────────────────────────────────────────────────

const iso = (ms: number) => new Date(ms).toISOString();
const PHASES = ["phase_1", "phase_2"] as const;
const ACTIVE_STEP = new Set(["running", "retry_wait", "needs_qa", "qa", "waiting_approval", "blocked"]);

const isSpeckit = (run: { definition: { id: string } }) =>
  run.definition.id.startsWith(DEFINITION_PREFIX) && (WORKFLOW_TYPES as readonly string[]).includes(run.definition.id.slice(DEFINITION_PREFIX.length));

/**
 * The seed's status of a run: pending, completed and failed (failed or cancelled) are the run's;
 * while it runs (or is paused or blocked), `waiting_approval` when a phase waits for a human, else
 * `in_progress`.
 */
export function seedStatusOf(run: Pick<RunView, "status" | "steps">): SeedStatus {
  switch (run.status) {
    case "pending":
      return "pending";
    case "completed":
      return "completed";
    case "failed":
    case "cancelled":
      return "failed";
    default:
      return run.steps.some((s) => s.status === "waiting_approval") ? "waiting_approval" : "in_progress";
  }
}

/** The phase in progress (running, retrying or waiting), else the last one that ran; null before the start. */
function currentPhaseOf(run: Pick<RunView, "status" | "steps">): Workflow["current_phase"] {
  const phases = PHASES.map((id) => run.steps.find((s) => s.id === id)).filter((s) => s !== undefined);
  const active = [...phases].reverse().find((s) => ACTIVE_STEP.has(s.status));
  if (active) return active.id as Workflow["current_phase"];
  if (run.status === "pending") return null;
  const touched = [...phases].reverse().find((s) => s.status !== "pending" && s.status !== "cancelled");
  return (touched?.id ?? "phase_1") as Workflow["current_phase"];
}

function toWorkflow(run: RunView): Workflow {
  const status = seedStatusOf(run);
  const featureId = typeof run.input.feature_id === "string" ? run.input.feature_id : (run.labels.feature_id ?? null);
  return {
    id: run.runId,
    workflow_type: run.definition.id.slice(DEFINITION_PREFIX.length) as WorkflowType,
    status,
    feature_id: featureId,
    current_phase: currentPhaseOf(run),
    result: status === "completed" ? (run.result ?? null) : null,
    error: status === "failed" ? (run.error ?? (run.status === "cancelled" ? "Workflow cancelled" : "Workflow failed")) : null,
    created_at: iso(run.createdAt),
    updated_at: iso(run.updatedAt),
    completed_at: status === "completed" ? iso(run.finishedAt ?? run.updatedAt) : null,
  };
}

/** A workflow whose create command is stored but which the core has not created yet. */
function acceptedWorkflow(a: AcceptedRun, type: WorkflowType, featureId: string, now: number): Workflow {
  return {
    id: a.runId,
    workflow_type: type,
    status: "pending",
    feature_id: featureId,
    current_phase: null,
    result: null,
    error: null,
    created_at: iso(now),
    updated_at: iso(now),
    completed_at: null,
  };
}

/** A stable row id: a name-based UUID of the workflow and the run event the row comes from. */
function rowId(runId: string, seq: number): string {
  const b = createHash("sha1").update(`seed002-history:${runId}:${seq}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const compact = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));

/**
 * The seed's `workflow_history` rows, read off the run's events: one row per change of the seed's
 * status, with the trigger that caused it. The agent finishing a phase (or a client's
 * agent_complete) is `agent_complete`; approvals and rejections name their actor, reason and the
 * revision they decided on.
 */
export function historyOf(runId: string, events: RunEvent[], lastPhase = "phase_2"): HistoryRow[] {
  const rows: HistoryRow[] = [];
  let cur: SeedStatus = "pending";
  const succeeded = new Map<string, Record<string, unknown>>();
  const push = (e: RunEvent, to: SeedStatus, trigger: HistoryRow["trigger"], meta: Record<string, unknown>) => {
    if (to === cur) return;
    rows.push({
      id: rowId(runId, e.seq),
      workflow_id: runId,
      from_status: cur,
      to_status: to,
      trigger,
      metadata: compact({ ...meta, run_seq: e.seq }),
      created_at: iso(e.at),
    });
    cur = to;
  };
  for (const e of events) {
    const d = e.data ?? {};
    const phase = typeof d.stepId === "string" ? d.stepId : undefined;
    const who = { actor: d.actor, reason: d.reason };
    switch (e.type) {
      case RunEventType.StatusChanged:
        if (d.from === "pending") push(e, "in_progress", "start", { ...who });
        break;
      // The run's end, one event: the status it reached (and what it came from) in its data.
      case RunEventType.Finished: {
        const to = String(d.status);
        if (to === "completed") push(e, "completed", "human_approved", { ...who });
        else if (to === "failed") push(e, "failed", "error", { ...who, error: d.error });
        else if (to === "cancelled") push(e, "failed", "cancel", { ...who, error: d.error });
        break;
      }
      case RunEventType.StepSucceeded:
        if (phase) succeeded.set(phase, d);
        break;
      case RunEventType.StepAwaitingApproval: {
        const by = phase ? succeeded.get(phase) : undefined;
        push(e, "waiting_approval", "agent_complete", { phase, revision: d.revision, attempt: d.attempt, by: by?.external ? "client" : "agent" });
        break;
      }
      case RunEventType.StepApproved:
        push(e, phase === lastPhase ? "completed" : "in_progress", "human_approved", { phase, ...who, revision: d.revision, forced: d.forced });
        break;
      case RunEventType.StepRejected:
        push(e, d.to === "failed" ? "failed" : "in_progress", "human_rejected", { phase, ...who, revision: d.revision, rework: d.rework });
        break;
    }
  }
  return rows;
}

/** A rejection's reason, from its phase_result: `reason`, `feedback`, `comment`, `notes` or `message`. */
function reasonOf(r: Record<string, unknown> | null | undefined): string | undefined {
  if (!r) return undefined;
  for (const k of ["reason", "feedback", "comment", "comments", "notes", "message"]) {
    const v = r[k];
    if (typeof v === "string" && v.trim()) return v.trim().slice(0, 10_000);
  }
  return undefined;
}

/** Every trigger of the seed's state machine; a client's `advance` takes the last three (TRIGGERS). */
export const WORKFLOW_TRIGGERS = ["start", "agent_complete", "error", "human_approved", "human_rejected"] as const;
export type WorkflowTrigger = (typeof WORKFLOW_TRIGGERS)[number];

/**
 * The kernel signal a trigger stands for, on the workflow's current phase (the step the kernel
 * picks: the running one, or the one waiting for approval), and the reason to record with it:
 * start → start; agent_complete → complete_step, `phase_result` its output; error → fail_step with
 * the error's text; human_approved → approve, `phase_result` replacing the output; human_rejected →
 * reject, with the reason the result gives (the agent's feedback on the rework).
 */
export function signalOfTrigger(trigger: WorkflowTrigger, phaseResult?: Record<string, unknown>): { signal: Signal; reason?: string } {
  switch (trigger) {
    case "start":
      return { signal: { name: "start" } };
    case "agent_complete":
      return { signal: phaseResult === undefined ? { name: "complete_step" } : { name: "complete_step", output: phaseResult } };
    case "error": {
      const text = typeof phaseResult?.error === "string" && phaseResult.error.length > 0 ? phaseResult.error.slice(0, 10_000) : "phase failed";
      return { signal: { name: "fail_step", error: text } };
    }
    case "human_approved":
      return { signal: phaseResult === undefined ? { name: "approve" } : { name: "approve", output: phaseResult } };
    case "human_rejected": {
      const reason = reasonOf(phaseResult);
      return { signal: { name: "reject" }, ...(reason !== undefined ? { reason } : {}) };
    }
  }
}

// ── routes ──────────────────────────────────────────────────────────────────────────────────────

const TAGS = ["workflows"];

export async function seed002Routes(app: FastifyInstance, opts: Surface): Promise<void> {
  const { runs, cfg } = opts;

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof Seed002Error) return reply.status(err.status).send(err.body());
    if (err instanceof ValidationError && err.part === "body" && err.zodError) {
      return reply.status(422).send({ detail: pydanticErrors(err.zodError, req.body) });
    }
    if (err instanceof JsonDecodeError || err instanceof JsonTooDeepError) {
      const position = err instanceof JsonDecodeError ? err.position : 0;
      return reply
        .status(422)
        .send({ detail: [{ type: "json_invalid", loc: ["body", position], msg: "JSON decode error", input: {}, ctx: { error: err.message } }] });
    }
    const { status, body } = toHttp(err);
    if (status >= 500) req.log.error({ err }, "request failed");
    return reply.status(status).send(body);
  });

  // FastAPI reads a JSON body whatever its exact type says and keeps anything else as text, which
  // then fails validation (422), so: our JSON parser (with the position of a decode error), and
  // every other content type as text.
  const jsonParser = app.getDefaultJsonParser("error", "ignore");
  const parseJson = (req: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void) => {
    if (body.trim() === "") return done(null, undefined);
    jsonParser(req, body, (err: Error | null, value?: unknown) => {
      if (!err) return done(null, value);
      let message = err.message;
      let position = 0;
      try {
        JSON.parse(body);
      } catch (e) {
        message = (e as Error).message;
        position = Number(/position (\d+)/.exec(message)?.[1] ?? 0);
      }
      done(new JsonDecodeError(message, position));
    });
  };
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(/^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i, { parseAs: "string" }, (req, body, done) => parseJson(req, body as string, done));
  app.addContentTypeParser("*", { parseAs: "string" }, (req, body, done) => {
    // No Content-Type at all: FastAPI tries JSON.
    if (req.headers["content-type"] === undefined) return parseJson(req, body as string, done);
    done(null, body === "" ? undefined : body);
  });

  const defaults = { rateLimit: opts.rateLimit, bodyLimit: cfg.ORCH_MAX_REQUEST_BYTES };
  const who = (req: FastifyRequest, reason?: string) => ({ actor: "api", correlationId: req.id, ...(reason ? { reason } : {}) });

  /** The workflow with this id (checked to be a UUID first), or 400/404 in the seed's words. */
  const idOf = (raw: string): string => {
    const id = canonicalUuid(raw);
    if (!id) throw new Seed002Error(400, "INVALID_UUID", `Invalid workflow ID format: ${raw.slice(0, 100)}`, { workflow_id: raw.slice(0, 100) });
    return id;
  };
  const load = async (id: string): Promise<RunView> => {
    const run = await runs.get(id);
    if (!run || !isSpeckit(run)) throw notFound(id);
    return run;
  };

  const errors = {
    400: { description: "INVALID_UUID, INVALID_WORKFLOW_TYPE, INVALID_TRIGGER or INVALID_STATE_TRANSITION", schema: SeedError },
    401: { description: 'No valid token: `{"error":{"code":"UNAUTHORIZED",…}}`', schema: SeedError },
    404: { description: "WORKFLOW_NOT_FOUND", schema: SeedError },
    422: { description: "FastAPI's validation error: a missing or mistyped field, a short description, a body that is not JSON", schema: FastApiValidation },
  };

  route(
    app,
    {
      method: "POST",
      url: "/workflows",
      operationId: "createWorkflow",
      tags: [...TAGS],
      summary: "Create a SpecKit workflow (it starts at once)",
      description: [
        "Creates a run of the built-in definition `speckit.<workflow_type>` and starts it: `status` is",
        '`in_progress` with `current_phase: "phase_1"`, whose agent starts at once. `feature_id` is the',
        "next feature number (3 digits) and a slug of the description cut to 30 characters",
        "(`001-add-user-authentication-with-o`); it names the feature's git branch and is a label of",
        "the run (`feature_id`, with `workflow_type`), so the run index finds it (view `speckit`).",
      ].join("\n"),
      body: CreateBody,
      responses: {
        201: { description: "Created and started", schema: Workflow },
        400: { description: "INVALID_WORKFLOW_TYPE, with the valid types in `details`", schema: SeedError },
        401: errors[401],
        413: { description: "Body too large", schema: SeedError },
        422: errors[422],
        429: { description: "Rate limited", schema: SeedError },
      },
    },
    async (req, reply, { body }) => {
      if (!(WORKFLOW_TYPES as readonly string[]).includes(body.workflow_type)) {
        throw new Seed002Error(400, "INVALID_WORKFLOW_TYPE", `Invalid workflow type: ${body.workflow_type.slice(0, 100)}`, {
          workflow_type: body.workflow_type.slice(0, 100),
          valid_types: WORKFLOW_TYPES,
        });
      }
      const type = body.workflow_type as WorkflowType;
      // The core numbers the workflow's feature once, for this run: asked again, it answers the same.
      const runId = randomUUID();
      const featureId = featureIdOf(await runs.writes.assignNumber("feature", runId), body.feature_description);
      const now = Date.now();
      const created = await runs.create(
        {
          runId,
          definition: { id: `${DEFINITION_PREFIX}${type}` },
          title: body.feature_description.slice(0, TITLE_MAX),
          labels: { workflow_type: type, feature_id: featureId },
          input: { feature_description: body.feature_description, feature_id: featureId, ...(body.context ? { context: body.context } : {}) },
          autoStart: true,
        },
        who(req),
      );
      req.log.info({ workflowId: created.runId, featureId, type }, "workflow created");
      const wf = "accepted" in created ? acceptedWorkflow(created, type, featureId, now) : toWorkflow(created);
      return reply.status(201).send(wf);
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/workflows/:id",
      operationId: "getWorkflow",
      tags: [...TAGS],
      summary: "A workflow",
      params: IdParams,
      responses: {
        200: { description: "The workflow", schema: Workflow },
        400: { description: "INVALID_UUID", schema: SeedError },
        401: errors[401],
        404: errors[404],
      },
    },
    async (_req, _reply, { params }) => toWorkflow(await load(idOf(params.id))),
  );

  route(
    app,
    {
      method: "POST",
      url: "/workflows/:id/advance",
      operationId: "advanceWorkflow",
      tags: [...TAGS],
      summary: "Advance a workflow with a trigger",
      description: [
        "`in_progress` + `agent_complete` → `waiting_approval` (phase_result becomes the phase's output;",
        "the agent's own later result is then ignored). `waiting_approval` + `human_approved` → the next",
        "phase (`in_progress`) or, after phase_2, `completed` (`result` = phase_result, `completed_at`",
        "set). `waiting_approval` + `human_rejected` → the same phase again (`in_progress`, the agent gets",
        "the reason as feedback), or `failed` on the rejection after 3 reworks of that phase.",
        "The stub and real agents finish phases on their own: a phase whose agent finished already",
        "waits for approval, so `agent_complete` on it is an INVALID_STATE_TRANSITION.",
        "Checks, in order: the body (422), the id (INVALID_UUID), the trigger (INVALID_TRIGGER), the",
        "workflow (WORKFLOW_NOT_FOUND), the transition (INVALID_STATE_TRANSITION).",
      ].join("\n"),
      params: IdParams,
      body: AdvanceBody,
      responses: {
        200: { description: "The workflow after the transition", schema: Workflow },
        400: errors[400],
        401: errors[401],
        404: errors[404],
        422: errors[422],
        429: { description: "Rate limited", schema: SeedError },
      },
    },
    async (req, _reply, { params, body }) => {
      const id = idOf(params.id);
      if (!(TRIGGERS as readonly string[]).includes(body.trigger)) {
        throw new Seed002Error(400, "INVALID_TRIGGER", `Invalid trigger: ${body.trigger.slice(0, 100)}`, {
          trigger: body.trigger.slice(0, 100),
          valid_triggers: TRIGGERS,
        });
      }
      const trigger = body.trigger as Trigger;
      await load(id);
      const { signal, reason } = signalOfTrigger(trigger, body.phase_result ?? undefined);
      try {
        const run = await runs.signal(id, signal, who(req, reason));
        req.log.info({ workflowId: id, trigger }, "workflow advanced");
        return toWorkflow(run);
      } catch (err) {
        if (!(err instanceof RefusedError)) throw err;
        const now = await load(id);
        const from = seedStatusOf(now);
        throw new Seed002Error(400, "INVALID_STATE_TRANSITION", `Invalid transition from ${from} with trigger ${trigger}`, {
          current_status: from,
          current_phase: currentPhaseOf(now),
          trigger,
          reason: err.message,
        });
      }
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/workflows/:id/history",
      operationId: "getWorkflowHistory",
      tags: [...TAGS],
      summary: "A workflow's state transitions (the seed's workflow_history), oldest first",
      description:
        "Read off the run's events: one row per status change, with its trigger (`start`, `agent_complete`, `human_approved`, `human_rejected`, `error`, `cancel`).",
      params: IdParams,
      responses: {
        200: { description: "The rows, oldest first", schema: z.array(HistoryRow) },
        400: { description: "INVALID_UUID", schema: SeedError },
        401: errors[401],
        404: errors[404],
      },
    },
    async (_req, _reply, { params }) => {
      const id = idOf(params.id);
      const run = await load(id);
      const events = await runs.history(id);
      const phases = run.steps.map((s) => s.id);
      return historyOf(
        id,
        events.map((e) => e.event),
        phases[phases.length - 1],
      );
    },
  );
}

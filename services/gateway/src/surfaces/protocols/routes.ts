import { createHash, randomBytes, randomUUID } from "node:crypto";
import { ErrorCode, ForgeStepType, RefusalCode, ROLES } from "@orch/contracts";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { RunView } from "@orch/contracts";
import { z } from "zod";
import { tokenHash } from "../../auth.js";
import type { Surface } from "../../context.js";
import { route } from "../../routing.js";
import {
  JobOutSchema,
  ProjectParams,
  ProtocolParams,
  Seed004,
  StepParams,
  TAGS,
  Unprocessable,
  conflict,
  detail,
  installSeed004Errors,
  notFound,
} from "./common.js";
import { seed004EventRoutes } from "./events.js";
import { seed004GitRoutes } from "./git.js";
import { PROTOCOL_STATUSES, jobTypeOf, protocolNameOf, toProjectOut, toProtocolOut, toStepOut, visibleSteps, type JobOut } from "./views.js";
import { PROTOCOL_NAME_LABEL } from "@orch/contracts";

/**
 * Seed 004, TasksGodzilla, at the root: projects, protocol runs (runs of the `protocol` definition,
 * or any run with a project), step runs (their steps), actions, events, queues, branches and
 * CodeMachine import, with integer ids, FastAPI's error bodies and the action table of its
 * original. Handlers translate HTTP into runs API calls and views; the engine decides.
 */

const Json = z.record(z.string(), z.unknown());

/** A new step's id in its run (its number comes from its index there, not from its id). */
const newStepId = () => `step-${randomBytes(6).toString("hex")}`;

const ProjectCreate = z.object({
  name: z.string().min(1).max(200),
  git_url: z.string().max(4_096),
  local_path: z.string().min(1).max(4_096).nullish(),
  base_branch: z.string().min(1).max(255).default("main"),
  ci_provider: z.string().max(64).nullish(),
  default_models: z.record(z.string().max(64), z.string().max(200)).nullish(),
  secrets: Json.nullish(),
});

const ProtocolCreate = z.object({
  protocol_name: z.string().min(1).max(255),
  status: z.enum(PROTOCOL_STATUSES).default("pending"),
  base_branch: z.string().min(1).max(255).nullish(),
  worktree_path: z.string().max(4_096).nullish(),
  protocol_root: z.string().max(4_096).nullish(),
  description: z.string().max(10_000).nullish(),
  template_config: Json.nullish(),
  template_source: Json.nullish(),
});

const STEP_CREATE_STATUSES = ["pending", "running", "needs_qa", "completed", "failed", "cancelled", "blocked"] as const;
const StepCreate = z.object({
  step_index: z.int().min(0),
  step_name: z.string().min(1).max(500),
  step_type: z.string().min(1).max(200),
  status: z.enum(STEP_CREATE_STATUSES).default("pending"),
  model: z.string().min(1).max(200).nullish(),
  summary: z.string().max(10_000).nullish(),
  engine_id: z.string().max(200).nullish(),
  policy: z.union([Json, z.array(z.unknown())]).nullish(),
});

const ProjectOutSchema = z.object({
  id: z.int(),
  name: z.string(),
  git_url: z.string().nullable(),
  local_path: z.string().nullable(),
  base_branch: z.string(),
  ci_provider: z.string().nullable(),
  default_models: z.record(z.string(), z.string()).nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
const ProtocolOutSchema = z.object({
  id: z.int(),
  project_id: z.int(),
  protocol_name: z.string(),
  status: z.enum(PROTOCOL_STATUSES),
  base_branch: z.string(),
  worktree_path: z.string().nullable(),
  protocol_root: z.string().nullable(),
  description: z.string().nullable(),
  template_config: Json.nullable(),
  template_source: Json.nullable(),
  spec_hash: z.string().nullable(),
  spec_validation_status: z.string().nullable(),
  spec_validated_at: z.string().nullable(),
  run_id: z.string(),
  definition_id: z.string(),
  error: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
const StepOutSchema = z.object({
  id: z.int(),
  protocol_run_id: z.int(),
  step_index: z.int(),
  step_name: z.string(),
  step_type: z.string(),
  status: z.enum(STEP_CREATE_STATUSES),
  retries: z.int(),
  model: z.string().nullable(),
  engine_id: z.string().nullable(),
  policy: z.unknown(),
  summary: z.string().nullable(),
  runtime_state: Json,
  created_at: z.string(),
  updated_at: z.string(),
});
const ActionResponse = z.object({ message: z.string(), job: JobOutSchema.nullable() });
const Detail = z.object({ detail: z.string() });

const ROLE_NAMES: ReadonlySet<string> = new Set(ROLES);

/** Stable JSON (sorted keys) for the spec hash. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** seed 004's spec hash: of `template_config.protocol_spec` when there is one. */
export function specHashOf(templateConfig: Record<string, unknown> | null | undefined): string | undefined {
  const spec = templateConfig?.protocol_spec;
  return spec === undefined || spec === null ? undefined : createHash("sha256").update(stable(spec)).digest("hex").slice(0, 16);
}

export async function seed004Routes(app: FastifyInstance, opts: Surface): Promise<void> {
  installSeed004Errors(app);
  const s = new Seed004(opts);
  const { runs, ids } = s;
  const defaults = { rateLimit: opts.rateLimit, bodyLimit: opts.cfg.ORCH_MAX_REQUEST_BYTES };
  /** seed 004's TASKSGODZILLA_AUTO_QA_AFTER_EXEC: QA starts as soon as a step's execution succeeds. */
  const autoQa = opts.cfg.ORCH_AUTO_QA_AFTER_EXEC;

  const protocolOut = async (run: RunView, n?: number) =>
    toProtocolOut(run, { n: n ?? (await ids.protocolInt(run.runId)), projectN: await ids.projectInt(run.projectId, await runs.getProject(run.projectId)) });

  const stepOut = async (run: RunView, stepId: string, protocolN?: number) => {
    const step = run.steps.find((x) => x.id === stepId)!;
    return toStepOut(run, step, { n: (await ids.stepInt(run.runId, stepId, run)) ?? 0, protocolN: protocolN ?? (await ids.protocolInt(run.runId)) });
  };

  /** The job an action enqueued: the step's current attempt on its role's queue. */
  const jobOf = async (run: RunView, stepId: string, kind: "execute" | "qa" | "plan", protocolN: number): Promise<JobOut> => {
    const step = run.steps.find((x) => x.id === stepId)!;
    const role = kind === "qa" ? (step.qaRole ?? "qa") : step.role;
    const payload: Record<string, unknown> = { protocol_run_id: protocolN, run_id: run.runId };
    if (kind !== "plan") payload.step_run_id = await ids.stepInt(run.runId, stepId, run);
    return {
      job_id: `${run.runId}.${stepId}.${step.attempt}`,
      job_type: jobTypeOf(kind, step.type),
      payload,
      status: "queued",
      queue: `role.${role}`,
      attempts: step.attempt,
      max_attempts: step.maxAttempts,
      created_at: new Date().toISOString(),
      started_at: null,
      ended_at: null,
      result: null,
      error: null,
    };
  };

  // ── projects ────────────────────────────────────────────────────────────────────────────────

  /** What a new project leaves open, as questions for whoever onboards it. */
  const onboardingQuestions = (b: { base_branch: string; ci_provider?: string | null | undefined; default_models?: unknown }): string[] => [
    `Is ${b.base_branch} the branch protocol runs should start from and merge into?`,
    ...(b.ci_provider ? [] : ["Which CI reports on this repository's branches (github, gitlab), so webhooks can drive its protocols?"]),
    ...(b.default_models ? [] : ["Which model should each role (architect, implementer, reviewer, tester, qa) use?"]),
    "Which command runs the project's tests?",
  ];

  route(
    app,
    {
      method: "POST",
      url: "/projects",
      operationId: "tgCreateProject",
      tags: TAGS,
      summary: "Create a project (and its setup protocol run `setup-<id>`)",
      description: [
        "Stores the project (integer `id`) and starts its onboarding: a protocol run named `setup-<id>` whose",
        "planning step runs in the agent hub, in the project's repository (`local_path`, else a clone of",
        "`git_url` under the hub's workspace). `secrets` are never returned; `secrets.api_token` becomes the",
        "project's own token (`X-Project-Token`), stored only as its SHA-256.",
      ].join("\n"),
      json: true,
      body: ProjectCreate,
      responses: { 200: { description: "The project", schema: ProjectOutSchema }, 422: { description: "Invalid body" } },
    },
    async (req, _reply, { body }) => {
      const token = typeof body.secrets?.api_token === "string" && body.secrets.api_token.length > 0 ? body.secrets.api_token : undefined;
      // The core numbers the project, stores it and starts its onboarding (the setup run) at once.
      const {
        project: rec,
        number: n,
        setupRunId,
      } = await runs.writes.createProject({
        fields: {
          name: body.name,
          ...(body.git_url ? { gitUrl: body.git_url } : {}),
          ...(body.local_path ? { localPath: body.local_path } : {}),
          baseBranch: body.base_branch,
          ...(body.ci_provider ? { ciProvider: body.ci_provider } : {}),
          ...(body.default_models ? { defaultModels: body.default_models } : {}),
        },
        ...(token ? { tokenSha256: tokenHash(token) } : {}),
        // Onboarding clarifications: what the project leaves open. Always recorded (a
        // `setup_clarifications` event); with ORCH_REQUIRE_ONBOARDING_CLARIFICATIONS the setup waits
        // for them: a `clarifications` step that must be approved (answered) before setup completes.
        onboarding: { questions: onboardingQuestions(body), blocking: opts.cfg.ORCH_REQUIRE_ONBOARDING_CLARIFICATIONS },
        actor: "tasksgodzilla",
        correlationId: req.id,
      });
      req.log.info({ projectId: rec.id, n, setupRun: setupRunId }, "project created");
      return toProjectOut(rec, n);
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/projects",
      operationId: "tgListProjects",
      tags: TAGS,
      summary: "Every project",
      responses: { 200: { description: "Projects, oldest first", schema: z.array(ProjectOutSchema) } },
    },
    async () => {
      const all = await runs.listProjects();
      const out = [];
      for (const p of all) out.push(toProjectOut(p, await ids.projectInt(p.id, p)));
      return out.sort((a, b) => a.id - b.id);
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/projects/:project_id",
      operationId: "tgGetProject",
      tags: TAGS,
      summary: "A project",
      projectScoped: true,
      params: ProjectParams,
      responses: {
        200: { description: "The project", schema: ProjectOutSchema },
        401: { description: "Project access denied", schema: Detail },
        404: { description: "No such project", schema: Detail },
      },
    },
    async (req, _reply, { params }) => toProjectOut(await s.project(req, params.project_id), params.project_id),
  );

  // ── protocols ───────────────────────────────────────────────────────────────────────────────

  route(
    app,
    {
      method: "POST",
      url: "/projects/:project_id/protocols",
      operationId: "tgCreateProtocol",
      tags: TAGS,
      summary: "Create a protocol run",
      description: [
        "A run of the `protocol` definition; its branch is `protocol_name`. `status` may be `pending` (the",
        "default: it waits for `start`, or for steps and `run_next_step`) or `planning` (started at once);",
        "a run cannot be created in any later status (422).",
      ].join("\n"),
      projectScoped: true,
      json: true,
      params: ProjectParams,
      body: ProtocolCreate,
      responses: {
        200: { description: "The protocol run", schema: ProtocolOutSchema },
        404: { description: "No such project", schema: Detail },
        422: { description: "Invalid body" },
      },
    },
    async (req, _reply, { params, body }) => {
      const project = await s.project(req, params.project_id);
      if (body.status !== "pending" && body.status !== "planning") {
        throw new Unprocessable([
          { type: "value_error", loc: ["body", "status"], msg: "Value error, a protocol run starts as 'pending' or 'planning'", input: body.status },
        ]);
      }
      const runId = randomUUID();
      const input: Record<string, unknown> = { protocol_name: body.protocol_name, base_branch: body.base_branch ?? project.baseBranch ?? "main" };
      for (const k of ["worktree_path", "protocol_root", "description", "template_config", "template_source"] as const) {
        if (body[k] !== undefined && body[k] !== null) input[k] = body[k];
      }
      const hash = specHashOf(body.template_config);
      if (hash) input.spec_hash = hash;
      const r = await runs.create(
        {
          projectId: project.id,
          runId,
          definition: { id: "protocol" },
          title: body.protocol_name,
          labels: { [PROTOCOL_NAME_LABEL]: body.protocol_name.slice(0, 256) },
          input,
          autoStart: body.status === "planning",
        },
        { actor: "tasksgodzilla", correlationId: req.id },
      );
      const run = "accepted" in r ? await runs.get(runId) : r;
      if (!run) throw detail(ErrorCode.Unavailable, "The protocol run is stored and will be created shortly");
      return protocolOut(run);
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/projects/:project_id/protocols",
      operationId: "tgListProtocols",
      tags: TAGS,
      summary: "A project's protocol runs (every run of the project, whatever surface made it)",
      projectScoped: true,
      params: ProjectParams,
      responses: {
        200: { description: "Protocol runs, oldest first", schema: z.array(ProtocolOutSchema) },
        404: { description: "No such project", schema: Detail },
      },
    },
    async (req, _reply, { params }) => {
      const project = await s.project(req, params.project_id);
      const summaries = await runs.listAll({ projectId: project.id });
      const out = [];
      for (const sum of summaries) {
        const run = await runs.get(sum.runId);
        if (run) out.push(await protocolOut(run));
      }
      return out.sort((a, b) => a.id - b.id);
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/protocols/:protocol_run_id",
      operationId: "tgGetProtocol",
      tags: TAGS,
      summary: "A protocol run",
      projectScoped: true,
      params: ProtocolParams,
      responses: { 200: { description: "The protocol run", schema: ProtocolOutSchema }, 404: { description: "No such protocol run", schema: Detail } },
    },
    async (req, _reply, { params }) => {
      const { run } = await s.protocol(req, params.protocol_run_id);
      return protocolOut(run, params.protocol_run_id);
    },
  );

  // ── steps ───────────────────────────────────────────────────────────────────────────────────

  route(
    app,
    {
      method: "POST",
      url: "/protocols/:protocol_run_id/steps",
      operationId: "tgCreateStep",
      tags: TAGS,
      summary: "Add a step run to a protocol run",
      description: [
        "Adds a step (`add_steps`): it runs in the agent hub as `step_type` (a role name picks that role,",
        "anything else runs as the implementer), then waits in `needs_qa` for `run_qa` or `approve`",
        "(with TASKSGODZILLA_AUTO_QA_AFTER_EXEC=true QA starts by itself). Steps run in the order they were",
        "added. A step starts `pending`; other statuses are refused (422).",
      ].join("\n"),
      projectScoped: true,
      json: true,
      params: ProtocolParams,
      body: StepCreate,
      responses: {
        200: { description: "The step run", schema: StepOutSchema },
        404: { description: "No such protocol run", schema: Detail },
        409: { description: "The protocol run is finished", schema: Detail },
        422: { description: "Invalid body" },
      },
    },
    async (req, _reply, { params, body }) => {
      const { run } = await s.protocol(req, params.protocol_run_id);
      if (body.status !== "pending") {
        throw new Unprocessable([{ type: "value_error", loc: ["body", "status"], msg: "Value error, a step run starts as 'pending'", input: body.status }]);
      }
      const stepId = newStepId();
      const payload: Record<string, unknown> = { step_index: body.step_index, step_name: body.step_name, step_type: body.step_type };
      if (body.summary != null) payload.summary = body.summary;
      if (body.engine_id != null) payload.engine_id = body.engine_id;
      if (body.policy != null) payload.policy = body.policy;
      const def: Record<string, unknown> = {
        id: stepId,
        title: body.step_name,
        type: body.step_type,
        role: ROLE_NAMES.has(body.step_type) ? body.step_type : "implementer",
        payload,
        qa: { auto: autoQa },
        inputs: { protocol: "${input}" },
      };
      if (body.model != null) def.model = body.model;
      const after = await s.signal(req, run.runId, { name: "add_steps", steps: [def] }, (e) =>
        e.kernelCode === "TERMINAL_STATE"
          ? conflict("Protocol already terminal")
          : e.kernelCode === "INVALID"
            ? new Unprocessable([{ type: "value_error", loc: ["body"], msg: `Value error, ${e.message}`, input: body }])
            : undefined,
      );
      return stepOut(after, stepId, params.protocol_run_id);
    },
    defaults,
  );

  route(
    app,
    {
      method: "GET",
      url: "/protocols/:protocol_run_id/steps",
      operationId: "tgListSteps",
      tags: TAGS,
      summary: "A protocol run's step runs, in order",
      projectScoped: true,
      params: ProtocolParams,
      responses: { 200: { description: "Step runs", schema: z.array(StepOutSchema) }, 404: { description: "No such protocol run", schema: Detail } },
    },
    async (req, _reply, { params }) => {
      const { run } = await s.protocol(req, params.protocol_run_id);
      const out = [];
      for (const st of visibleSteps(run))
        out.push(toStepOut(run, st, { n: (await ids.stepInt(run.runId, st.id, run)) ?? 0, protocolN: params.protocol_run_id }));
      return out;
    },
  );

  route(
    app,
    {
      method: "GET",
      url: "/steps/:step_id",
      operationId: "tgGetStep",
      tags: TAGS,
      summary: "A step run",
      projectScoped: true,
      params: StepParams,
      responses: { 200: { description: "The step run", schema: StepOutSchema }, 404: { description: "No such step run", schema: Detail } },
    },
    async (req, _reply, { params }) => {
      const { run, stepId, protocolN } = await s.step(req, params.step_id);
      return stepOut(run, stepId, protocolN);
    },
  );

  // ── protocol actions ────────────────────────────────────────────────────────────────────────

  const protocolAction = (
    action: string,
    summary: string,
    description: string,
    responses: Record<number, { description: string; schema?: z.ZodType }>,
    handler: (req: FastifyRequest, run: RunView, n: number) => Promise<unknown>,
  ) =>
    route(
      app,
      {
        method: "POST",
        url: `/protocols/:protocol_run_id/actions/${action}`,
        operationId: `tgProtocol_${action}`,
        tags: TAGS,
        summary,
        description,
        projectScoped: true,
        params: ProtocolParams,
        responses: { ...responses, 404: { description: "No such protocol run (or the table's 404)", schema: Detail } },
      },
      async (req, _reply, { params }) => {
        const { run } = await s.protocol(req, params.protocol_run_id);
        return handler(req, run, params.protocol_run_id);
      },
      defaults,
    );

  protocolAction(
    "start",
    "Start planning (from pending, planned or paused)",
    '→ planning; the planning step is dispatched. 409 "Protocol already running or terminal" otherwise.',
    { 200: { description: "Planning enqueued", schema: ActionResponse }, 409: { description: "Protocol already running or terminal", schema: Detail } },
    async (req, run, n) => {
      const after = await s.signal(req, run.runId, { name: "start" }, () => conflict("Protocol already running or terminal"));
      const plan = after.planning;
      return { message: "Protocol planning enqueued", job: plan ? await jobOf(after, plan.id, "plan", n) : null };
    },
  );

  protocolAction(
    "pause",
    "Pause (from any status but a final one)",
    '→ paused; the running step\'s result is still recorded, nothing new starts. 409 "Protocol already terminal".',
    { 200: { description: "The protocol run", schema: ProtocolOutSchema }, 409: { description: "Protocol already terminal", schema: Detail } },
    async (req, run, n) => protocolOut(await s.signal(req, run.runId, { name: "pause" }, () => conflict("Protocol already terminal")), n),
  );

  protocolAction(
    "resume",
    "Resume (from paused)",
    '→ running. 409 "Protocol is not paused".',
    { 200: { description: "The protocol run", schema: ProtocolOutSchema }, 409: { description: "Protocol is not paused", schema: Detail } },
    async (req, run, n) => protocolOut(await s.signal(req, run.runId, { name: "resume" }, () => conflict("Protocol is not paused")), n),
  );

  protocolAction(
    "cancel",
    "Cancel (idempotent)",
    "→ cancelled; its pending, running and needs_qa steps are cancelled. A finished protocol run stays as it is.",
    { 200: { description: "The protocol run", schema: ProtocolOutSchema } },
    async (req, run, n) => protocolOut(await s.signal(req, run.runId, { name: "cancel" }, () => undefined), n),
  );

  /** The step whose attempt an action started: the one whose attempt number went up. */
  const startedStep = (before: RunView, after: RunView) => visibleSteps(after).find((x) => x.attempt > (before.steps.find((b) => b.id === x.id)?.attempt ?? 0));

  protocolAction(
    "run_next_step",
    "Run the first pending, blocked or failed step",
    'The step and the protocol run → running. 404 "No pending or failed steps to run".',
    { 200: { description: "Step enqueued", schema: ActionResponse }, 409: { description: "Refused (planning, at a budget gate, finished)", schema: Detail } },
    async (req, run, n) => {
      const after = await s.signal(req, run.runId, { name: "run_next_step" }, (e) =>
        e.kernelCode === "NOT_FOUND" ? notFound("No pending or failed steps to run") : undefined,
      );
      const step = startedStep(run, after);
      const name = step?.title ?? step?.id ?? "step";
      return { message: `Step ${name} enqueued`, job: step ? await jobOf(after, step.id, "execute", n) : null };
    },
  );

  protocolAction(
    "retry_latest",
    "Retry the step that ran last, when it failed or is blocked",
    'It runs again with retries + 1; the protocol run → running. 404 "No failed or blocked steps to retry" (also for a finished protocol run).',
    {
      200: { description: "Retry enqueued", schema: ActionResponse },
      409: { description: "Refused (at a budget gate; Protocol already terminal when its last step failed)", schema: Detail },
    },
    async (req, run, n) => {
      const after = await s.signal(req, run.runId, { name: "retry_latest" }, (e) =>
        e.kernelCode === RefusalCode.NotFound
          ? notFound("No failed or blocked steps to retry")
          : e.kernelCode === RefusalCode.TerminalState
            ? conflict("Protocol already terminal")
            : undefined,
      );
      const step = startedStep(run, after);
      const name = step?.title ?? step?.id ?? "step";
      return { message: `Retrying ${name}`, job: step ? await jobOf(after, step.id, "execute", n) : null };
    },
  );

  protocolAction(
    "open_pr",
    "Open the pull/merge request",
    [
      "Adds an `open_pr` step (a `pr.open` forge step, role maintainer) to the protocol run and runs it: the",
      "agent hub pushes the protocol's branch and opens its pull request (GitLab: merge request) on the",
      "project's forge, or finds the one already open; the run records it (`pr.opened`). A project without a",
      'forge fails the step, saying so. A finished protocol run takes no new work: 409 "Protocol already terminal".',
    ].join("\n"),
    { 200: { description: "Open PR/MR enqueued", schema: ActionResponse }, 409: { description: "Protocol already terminal", schema: Detail } },
    async (req, run, n) => {
      const taken = new Set(run.steps.map((x) => x.id));
      const name = protocolNameOf(run);
      // The core adds the step and starts it in one transition, naming it (open_pr, open_pr_2, …)
      // and composing what the forge step is given (forge, base, title and body from the run).
      const signal = {
        name: "open_pr" as const,
        payload: { step_name: "open_pr", step_type: "open_pr", step_index: visibleSteps(run).length },
        inputs: { ticket: { key: name, title: typeof run.input.description === "string" ? run.input.description : name } },
      };
      const terminal = (e: { kernelCode: string }) => (e.kernelCode === "TERMINAL_STATE" ? conflict("Protocol already terminal") : undefined);
      const after = await s.signal(req, run.runId, signal, terminal);
      const stepId = after.steps.find((x) => !taken.has(x.id) && x.type === ForgeStepType.Open)?.id ?? "open_pr";
      return { message: "Open PR/MR enqueued", job: await jobOf(after, stepId, "execute", n) };
    },
  );

  // ── step actions ────────────────────────────────────────────────────────────────────────────

  const stepAction = (
    action: string,
    summary: string,
    description: string,
    responses: Record<number, { description: string; schema?: z.ZodType }>,
    handler: (req: FastifyRequest, run: RunView, stepId: string, protocolN: number) => Promise<unknown>,
  ) =>
    route(
      app,
      {
        method: "POST",
        url: `/steps/:step_id/actions/${action}`,
        operationId: `tgStep_${action}`,
        tags: TAGS,
        summary,
        description,
        projectScoped: true,
        params: StepParams,
        responses: { ...responses, 404: { description: "No such step run", schema: Detail } },
      },
      async (req, _reply, { params }) => {
        const { run, stepId, protocolN } = await s.step(req, params.step_id);
        return handler(req, run, stepId, protocolN);
      },
      defaults,
    );

  stepAction(
    "run",
    "Run a step (from pending, blocked or failed)",
    [
      "→ running (a failed or blocked one with retries + 1), also while the protocol run is still planning (it runs once",
      'planned). 409 "Step already running or completed" (the step\'s status), "Protocol already terminal", or the engine\'s',
      "reason at a budget gate.",
    ].join(" "),
    {
      200: { description: "Step execution enqueued", schema: ActionResponse },
      409: { description: "Step already running or completed; Protocol already terminal; at a budget gate", schema: Detail },
    },
    async (req, run, stepId, n) => {
      // The kernel's refusal code says why (never its message).
      const after = await s.signal(req, run.runId, { name: "run_step", stepId }, (e) =>
        e.kernelCode === RefusalCode.IllegalTransition
          ? conflict("Step already running or completed")
          : e.kernelCode === RefusalCode.TerminalState
            ? conflict("Protocol already terminal")
            : undefined,
      );
      return { message: "Step execution enqueued", job: await jobOf(after, stepId, "execute", n) };
    },
  );

  stepAction(
    "run_qa",
    "Run a step's QA (unless it is completed or cancelled)",
    '→ needs_qa while QA runs; a QA pass completes the step, a fail fails it. 409 "Step already completed or cancelled".',
    { 200: { description: "QA enqueued", schema: ActionResponse }, 409: { description: "Step already completed or cancelled", schema: Detail } },
    async (req, run, stepId, n) => {
      const after = await s.signal(req, run.runId, { name: "run_qa", stepId }, () => conflict("Step already completed or cancelled"));
      return { message: "QA enqueued", job: await jobOf(after, stepId, "qa", n) };
    },
  );

  stepAction(
    "approve",
    "Mark a step completed by hand",
    '→ completed, from any status; the protocol run completes when every step is completed or cancelled. A finished protocol run\'s steps cannot change: 409 "Protocol already terminal".',
    { 200: { description: "The step run", schema: StepOutSchema }, 409: { description: "Protocol already terminal", schema: Detail } },
    async (req, run, stepId, n) => {
      // Approving a completed step changes nothing, even in a finished protocol run.
      if (run.steps.find((x) => x.id === stepId)?.status === "completed") return stepOut(run, stepId, n);
      const after = await s.signal(req, run.runId, { name: "approve", stepId, force: true }, (e) =>
        e.kernelCode === "TERMINAL_STATE" ? conflict("Protocol already terminal") : undefined,
      );
      return stepOut(after, stepId, n);
    },
  );

  await seed004EventRoutes(app, s);
  await seed004GitRoutes(app, s, defaults);
}

import { decode, encode, isCasConflict, sendCommandAndWait, type Bus } from "@orch/bus";
import {
  ProjectRecord,
  WriteErrorCode,
  type Onboarding,
  type ProjectChange,
  type ProjectCreateRequest,
  type ProjectUpdateRequest,
  type WriteIssue,
} from "@orch/contracts";
import type { Logger } from "@orch/logging";
import { type ProjectWritten } from "@orch/runs";
import { derivedForge, type ForgeHosts } from "../forges.js";
import type { NumberWriter } from "./numbers.js";
import { PROTOCOL_NAME_LABEL } from "@orch/contracts";

/**
 * Projects: only the core writes the `projects` bucket and the `project_tokens` index beside it.
 * A project is created once (compare-and-set create: a taken id is ALREADY_EXISTS) with the number
 * the core gives it (its seed 004 id, kept on the record as `alias`), and changed with
 * compare-and-set on its record (a lost race reads it again). A project token is only ever its
 * SHA-256: the index maps it to the project, and a replaced or removed token is dropped from it.
 *
 * Onboarding (seed 004's project creation): in the same handling the core creates the project's
 * setup run `setup-<number>`, a run of `protocol` whose planning step resolves the repository in an
 * agent hub, and records on it the questions the project leaves open (with `blocking`, a step that
 * waits until they are answered). It goes through the command stream like any run: created once
 * (its command id is the run's), whichever replica applies it.
 */

/** A refusal with the code the edge is answered with. */
export class ProjectWriteError extends Error {
  override readonly name = "ProjectWriteError";
  constructor(
    readonly code: (typeof WriteErrorCode)[keyof typeof WriteErrorCode],
    message: string,
    readonly issues?: WriteIssue[],
  ) {
    super(message);
  }
}

const CAS_TRIES = 50;

/** The type of a setup run's clarifications step (seed 004's blocking onboarding clarifications). */
const CLARIFICATIONS_STEP_TYPE = "setup.clarifications";

type Fields = Omit<ProjectRecord, "id" | "createdAt" | "updatedAt" | "tokenSha256" | "alias">;

/** `rec` with `change` applied: a field left out keeps its value, `null` removes it. */
export function applyChange<T extends Partial<Fields>>(rec: T, change: ProjectChange): T {
  const out: Record<string, unknown> = { ...rec };
  for (const [k, v] of Object.entries(change)) {
    if (v === undefined) continue;
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out as T;
}

export interface ProjectWriterOptions {
  bus: Bus;
  numbers: NumberWriter;
  logger: Logger;
  /** The mode of the runs it creates (the setup run). */
  mode: "mock" | "live";
  /** Enterprise and self-managed forge hosts (ORCH_FORGE_HOSTS), for forges derived from git URLs. */
  forgeHosts?: ForgeHosts;
}

/**
 * A project's fields with its forge decided: the one the change sets (`forgeSource: set`), else the
 * one set before, else the one derived from its git URL now (`derived`: derived again whenever the
 * URL or the CI provider changes, or the set one is removed with `forge: null`).
 */
export function withForge<T extends Partial<Fields>>(
  next: T,
  change: ProjectChange,
  prev: Pick<ProjectRecord, "forgeSource"> | undefined,
  hosts: ForgeHosts = {},
): T {
  const { forge: _f, forgeSource: _s, ...rest } = next;
  if (change.forge) return { ...rest, forge: change.forge, forgeSource: "set" } as T;
  if (change.forge === undefined && prev?.forgeSource === "set" && next.forge) return { ...rest, forge: next.forge, forgeSource: "set" } as T;
  const derived = derivedForge(next.gitUrl, next.ciProvider, hosts);
  return (derived ? { ...rest, forge: derived, forgeSource: "derived" } : rest) as T;
}

export class ProjectWriter {
  readonly #o: ProjectWriterOptions;

  constructor(opts: ProjectWriterOptions) {
    this.#o = opts;
  }

  #kv() {
    return this.#o.bus.kv(this.#o.bus.names.buckets.projects);
  }

  #tokens() {
    return this.#o.bus.kv(this.#o.bus.names.buckets.projectTokens);
  }

  async #read(id: string): Promise<{ rec: ProjectRecord; revision: number } | null> {
    const e = await (await this.#kv()).get(id);
    if (!e || e.operation !== "PUT" || e.length === 0) return null;
    const d = decode(ProjectRecord, e.value);
    if (!d.ok) throw new ProjectWriteError(WriteErrorCode.Internal, `project ${id}'s record is unreadable: ${d.error}`);
    return { rec: d.value, revision: e.revision };
  }

  #valid(candidate: unknown): ProjectRecord {
    const r = ProjectRecord.safeParse(candidate);
    if (r.success) return r.data;
    const issues = r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    throw new ProjectWriteError(WriteErrorCode.Invalid, `invalid project: ${issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ")}`, issues);
  }

  /** Creates a project: ALREADY_EXISTS when its id is taken. */
  async create(req: ProjectCreateRequest): Promise<ProjectWritten> {
    const { numbers } = this.#o;
    if (req.id !== undefined && (await this.#read(req.id))) throw exists(req.id);
    // Without an id the project is named by its number.
    let n: number;
    let id: string;
    if (req.id !== undefined) {
      id = req.id;
      n = await numbers.assign("project", id);
    } else {
      n = await numbers.next("project");
      id = `project-${n}`;
      n = await numbers.bind("project", id, n);
    }
    const now = Date.now();
    const rec = this.#valid({
      ...withForge(applyChange({}, req.fields), req.fields, undefined, this.#o.forgeHosts),
      id,
      ...(req.tokenSha256 ? { tokenSha256: req.tokenSha256 } : {}),
      alias: String(n),
      createdAt: now,
      updatedAt: now,
    });
    try {
      await (await this.#kv()).create(id, encode(ProjectRecord, rec));
    } catch (err) {
      if (isCasConflict(err)) throw exists(id);
      throw err;
    }
    if (rec.tokenSha256) await this.#indexToken(rec.tokenSha256, id);
    const setupRunId = req.onboarding ? await this.#onboard(rec, n, req.onboarding, req) : undefined;
    this.#o.logger.info({ projectId: id, n, setupRunId }, "project created");
    return { created: true, project: rec, number: n, ...(setupRunId ? { setupRunId } : {}) };
  }

  /** Changes a project (compare-and-set): NOT_FOUND when it is not there, unless `createIfMissing`. */
  async update(req: ProjectUpdateRequest): Promise<ProjectWritten> {
    for (let i = 0; i < CAS_TRIES; i++) {
      const cur = await this.#read(req.id);
      if (!cur) {
        if (!req.createIfMissing) throw new ProjectWriteError(WriteErrorCode.NotFound, `project ${req.id} not found`);
        if (req.fields.name === undefined) {
          throw new ProjectWriteError(WriteErrorCode.Invalid, "name: required to create a project", [
            { path: "name", message: "required to create a project" },
          ]);
        }
        try {
          return await this.create({
            id: req.id,
            fields: { ...req.fields, name: req.fields.name },
            ...(req.tokenSha256 ? { tokenSha256: req.tokenSha256 } : {}),
            ...(req.actor ? { actor: req.actor } : {}),
          });
        } catch (err) {
          // Created meanwhile: change it instead.
          if (err instanceof ProjectWriteError && err.code === WriteErrorCode.AlreadyExists) continue;
          throw err;
        }
      }
      const prev = cur.rec;
      // A project made before numbers were gets its number now.
      const n = Number(prev.alias) > 0 ? Number(prev.alias) : await this.#o.numbers.assign("project", prev.id);
      const next = withForge(applyChange({ ...prev }, req.fields), req.fields, prev, this.#o.forgeHosts);
      if (req.tokenSha256 === null) delete next.tokenSha256;
      else if (req.tokenSha256 !== undefined) next.tokenSha256 = req.tokenSha256;
      const rec = this.#valid({ ...next, id: prev.id, alias: String(n), createdAt: prev.createdAt, updatedAt: Date.now() });
      try {
        await (await this.#kv()).update(rec.id, encode(ProjectRecord, rec), cur.revision);
      } catch (err) {
        if (isCasConflict(err)) continue;
        throw err;
      }
      if (rec.tokenSha256 && rec.tokenSha256 !== prev.tokenSha256) await this.#indexToken(rec.tokenSha256, rec.id);
      if (prev.tokenSha256 && prev.tokenSha256 !== rec.tokenSha256) await (await this.#tokens()).delete(prev.tokenSha256);
      this.#o.logger.info(
        { projectId: rec.id, token: req.tokenSha256 === undefined ? "unchanged" : req.tokenSha256 === null ? "removed" : "set" },
        "project changed",
      );
      return { created: false, project: rec, number: n };
    }
    throw new ProjectWriteError(WriteErrorCode.Unavailable, `project ${req.id} is changed too often at once; try again`);
  }

  /**
   * Brings what projects were written before the core wrote them up to date: numbers the records
   * without a number, raises the counter past every number a record has, and indexes every
   * project's token. Run at start, by every replica (each step is a compare-and-set or an
   * idempotent put, so replicas starting together agree). Answers how many it numbered.
   */
  async reconcile(): Promise<number> {
    const kv = await this.#kv();
    const ids: string[] = [];
    for await (const k of await kv.keys()) ids.push(k);
    let max = 0;
    let numbered = 0;
    for (const id of ids) {
      const cur = await this.#read(id).catch(() => null);
      if (!cur) continue;
      if (cur.rec.tokenSha256) await this.#indexTokenOnce(cur.rec.tokenSha256, id);
      const had = Number(cur.rec.alias);
      if (Number.isSafeInteger(had) && had > 0) {
        max = Math.max(max, had);
        await this.#o.numbers.bind("project", id, had);
        continue;
      }
      await this.update({ id, fields: {} });
      numbered++;
    }
    if (max > 0) await this.#o.numbers.atLeast("project", max);
    return numbered;
  }

  async #indexToken(hash: string, projectId: string): Promise<void> {
    await (await this.#tokens()).put(hash, JSON.stringify({ projectId }));
  }

  async #indexTokenOnce(hash: string, projectId: string): Promise<void> {
    try {
      await (await this.#tokens()).create(hash, JSON.stringify({ projectId }));
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }

  /** Creates the project's setup run and records its onboarding questions on it; answers its run id. */
  async #onboard(rec: ProjectRecord, n: number, o: Onboarding, origin: { actor?: string | undefined; correlationId?: string | undefined }): Promise<string> {
    const { bus, logger, mode } = this.#o;
    const name = `setup-${n}`;
    const runId = name;
    const actor = origin.actor ?? "api";
    const wait = { timeoutMs: 3_000, ...(origin.correlationId ? { correlationId: origin.correlationId } : {}) };
    const steps = o.blocking
      ? [
          {
            id: "clarifications",
            title: "Onboarding clarifications",
            type: CLARIFICATIONS_STEP_TYPE,
            role: "architect",
            inputs: { questions: o.questions },
            payload: { step_index: 0, step_name: "clarifications", step_type: CLARIFICATIONS_STEP_TYPE, questions: o.questions },
          },
        ]
      : [];
    const created = await sendCommandAndWait(
      bus,
      {
        type: "run.create",
        commandId: `create:${runId}`,
        runId,
        issuedAt: Date.now(),
        actor,
        projectId: rec.id,
        definition: { id: "protocol" },
        title: name,
        labels: { [PROTOCOL_NAME_LABEL]: name },
        input: { protocol_name: name, base_branch: rec.baseBranch ?? "main", description: "Project setup and bootstrap", setup: true },
        ...(steps.length ? { steps } : {}),
        autoStart: true,
        mode,
      },
      wait,
    );
    if (created && !created.ok) logger.warn({ runId, error: created.error }, "the setup run was refused");
    // The questions, as facts: a `setup_clarifications` event in the run's history.
    const facts = await sendCommandAndWait(
      bus,
      {
        type: "run.signal",
        commandId: `onboarding:${runId}`,
        runId,
        issuedAt: Date.now(),
        actor,
        signal: { name: "set_facts", facts: { clarifications: { questions: o.questions, blocking: o.blocking } } },
      },
      wait,
    );
    if (facts && !facts.ok) logger.warn({ runId, error: facts.error }, "could not record the onboarding clarifications");
    return runId;
  }
}

const exists = (id: string) => new ProjectWriteError(WriteErrorCode.AlreadyExists, `project ${id} exists`);

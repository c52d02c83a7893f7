import { decode, encode, isNoAnswer, type Bus } from "@orch/bus";
import {
  DefinitionPutAnswer,
  DefinitionPutRequest,
  ErrorCode,
  IdAssignAnswer,
  IdAssignRequest,
  OrchError,
  ProjectCreateRequest,
  ProjectUpdateRequest,
  ProjectWriteAnswer,
  RPC,
  WriteErrorCode,
  type DefinitionSummary,
  type NumberedKind,
  type ProjectRecord,
  type WriteError,
} from "@orch/contracts";
import type { z } from "zod";

/**
 * What an edge asks the core to write (definitions, projects, numbers), over NATS request/reply:
 * any orchestrator replica answers. A refusal comes back as a `WriteRefusedError` with the core's
 * code (`writeCode`) mapped to ours; no answer is UNAVAILABLE (nothing was written, or it was and a
 * retry answers the same: every write here is idempotent or refuses a second time).
 */

/** The core's refusal codes → ours. */
const CODE_OF: Record<WriteErrorCode, ErrorCode> = {
  [WriteErrorCode.AlreadyExists]: ErrorCode.Conflict,
  [WriteErrorCode.Invalid]: ErrorCode.BadRequest,
  [WriteErrorCode.NotFound]: ErrorCode.NotFound,
  [WriteErrorCode.Unavailable]: ErrorCode.Unavailable,
  [WriteErrorCode.Internal]: ErrorCode.Internal,
};

export class WriteRefusedError extends OrchError {
  override name = "WriteRefusedError";
  readonly writeCode: WriteErrorCode;
  readonly issues: WriteError["issues"];
  constructor(e: WriteError) {
    super(CODE_OF[e.code], e.message, e.issues ? { details: { fields: e.issues } } : {});
    this.writeCode = e.code;
    this.issues = e.issues;
  }
}

export interface ProjectWritten {
  created: boolean;
  project: ProjectRecord;
  number: number;
  setupRunId?: string;
}

export class CoreWrites {
  readonly #bus: Bus;
  readonly #timeoutMs: number;

  constructor(bus: Bus, opts: { timeoutMs?: number } = {}) {
    this.#bus = bus;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Publishes a definition version: `created: false` when this exact content was published before. */
  async putDefinition(req: DefinitionPutRequest): Promise<{ created: boolean; summary: DefinitionSummary }> {
    const a = await this.#ask(RPC.definitionsPut, DefinitionPutRequest, DefinitionPutAnswer, req);
    if (!a.ok) throw new WriteRefusedError(a.error);
    return { created: a.created, summary: a.summary };
  }

  /** Creates a project (ALREADY_EXISTS when its id is taken), with its onboarding when asked. */
  async createProject(req: ProjectCreateRequest): Promise<ProjectWritten> {
    return this.#project(RPC.projectsCreate, ProjectCreateRequest, req);
  }

  /** Changes a project (NOT_FOUND when it is not there, unless `createIfMissing`). */
  async updateProject(req: ProjectUpdateRequest): Promise<ProjectWritten> {
    return this.#project(RPC.projectsUpdate, ProjectUpdateRequest, req);
  }

  /** The number the core gives `key` (assigned on the first request, the same on every later one). */
  async assignNumber(kind: NumberedKind, key: string, opts: { timeoutMs?: number } = {}): Promise<number> {
    const a = await this.#ask(RPC.idsAssign, IdAssignRequest, IdAssignAnswer, { kind, key }, opts.timeoutMs);
    if (!a.ok) throw new WriteRefusedError(a.error);
    return a.n;
  }

  async #project<S extends z.ZodType>(name: string, schema: S, req: z.input<S>): Promise<ProjectWritten> {
    const a = await this.#ask(name, schema, ProjectWriteAnswer, req);
    if (!a.ok) throw new WriteRefusedError(a.error);
    return { created: a.created, project: a.project, number: a.number, ...(a.setupRunId ? { setupRunId: a.setupRunId } : {}) };
  }

  async #ask<S extends z.ZodType, A extends z.ZodType>(name: string, schema: S, answer: A, req: z.input<S>, timeoutMs = this.#timeoutMs): Promise<z.output<A>> {
    if (!this.#bus.connected) {
      throw new OrchError(ErrorCode.NatsUnavailable, "NATS is unavailable: no connection to it (the gateway keeps reconnecting); try again shortly");
    }
    const body = encode(schema, req);
    // A request NATS would refuse to carry (past the server's max_payload): too large, not a failure.
    const max = this.#bus.nc.info?.max_payload;
    if (max !== undefined && body.length > max) {
      throw new OrchError(ErrorCode.PayloadTooLarge, `the ${name} request is ${body.length} bytes; NATS carries at most ${max}`);
    }
    let data: Uint8Array;
    try {
      data = (await this.#bus.nc.request(this.#bus.names.subjects.rpc(name), body, { timeout: timeoutMs })).data;
    } catch (err) {
      if (isNoAnswer(err))
        throw new OrchError(ErrorCode.Unavailable, `no orchestrator answered ${name} (is the orchestrator service running?)`, { cause: err });
      throw err;
    }
    const d = decode(answer, data);
    if (!d.ok) throw new OrchError(ErrorCode.Unavailable, `the orchestrator's answer to ${name} is unreadable: ${d.error}`);
    return d.value;
  }
}

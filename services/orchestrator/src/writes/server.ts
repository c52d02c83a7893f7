import { decode, encode, isBusUnavailable, type Bus } from "@orch/bus";
import {
  DefinitionPutAnswer,
  DefinitionPutRequest,
  IdAssignAnswer,
  IdAssignRequest,
  ProjectCreateRequest,
  ProjectUpdateRequest,
  ProjectWriteAnswer,
  RPC,
  WriteErrorCode,
  type WriteError,
} from "@orch/contracts";
import { DefinitionError } from "@orch/engine";
import type { Logger } from "@orch/logging";
import { DefinitionConflictError } from "@orch/runs";
import type { Msg, Subscription } from "@nats-io/transport-node";
import type { z } from "zod";
import type { DefinitionWriter } from "./definitions.js";
import type { NumberWriter } from "./numbers.js";
import { ProjectWriteError, type ProjectWriter } from "./projects.js";

/**
 * The core's answers to the edges' write requests (`<p>.rpc.*`, contracts/writes.ts), in the queue
 * group every replica joins: one replica answers each request. A request that does not validate is
 * refused as INVALID; a failure is answered with its code (never a silence the edge waits out).
 */

export interface Writers {
  definitions: DefinitionWriter;
  projects: ProjectWriter;
  numbers: NumberWriter;
}

/** An error → the refusal the edge gets. */
export function refusalOf(err: unknown, log: Logger, what: string): WriteError {
  if (err instanceof DefinitionError) return { code: WriteErrorCode.Invalid, message: err.message, issues: err.issues };
  if (err instanceof DefinitionConflictError) return { code: WriteErrorCode.AlreadyExists, message: err.message };
  if (err instanceof ProjectWriteError) return { code: err.code, message: err.message, ...(err.issues ? { issues: err.issues } : {}) };
  if (isBusUnavailable(err)) {
    log.warn({ err, rpc: what }, "a write failed: JetStream unavailable");
    return { code: WriteErrorCode.Unavailable, message: `${what} could not be written now (JetStream unavailable); try again` };
  }
  log.error({ err, rpc: what }, "a write failed");
  return { code: WriteErrorCode.Internal, message: `${what} failed in the orchestrator (see its log)` };
}

export function serveWrites(bus: Bus, log: Logger, w: Writers): { stop(): void } {
  const subs: Subscription[] = [];

  const serve = <S extends z.ZodType, A extends z.ZodType>(name: string, schema: S, answer: A, handle: (req: z.output<S>) => Promise<z.input<A>>) => {
    const refused = (error: WriteError) => ({ ok: false as const, error }) as z.input<A>;
    // An answer that fails its schema is a bug: the edge is told so. One that cannot be sent (the
    // connection is closing) is lost: the edge's request times out, and asking again is safe.
    const respond = (msg: Msg, value: z.input<A>) => {
      let data: Uint8Array;
      try {
        data = encode(answer, value);
      } catch (err) {
        log.error({ err, rpc: name }, "an answer failed its schema");
        data = encode(answer, refused({ code: WriteErrorCode.Internal, message: `${name} failed in the orchestrator (see its log)` }));
      }
      try {
        msg.respond(data);
      } catch (err) {
        log.warn({ err, rpc: name }, "could not answer a write request");
      }
    };
    subs.push(
      bus.nc.subscribe(bus.names.subjects.rpc(name), {
        queue: bus.names.groups.core,
        callback: (err, msg) => {
          if (err || !msg.reply) return;
          const d = decode(schema, msg.data);
          if (!d.ok) return respond(msg, refused({ code: WriteErrorCode.Invalid, message: `invalid ${name} request: ${d.error}` }));
          handle(d.value).then(
            (value) => respond(msg, value),
            (e: unknown) => respond(msg, refused(refusalOf(e, log, name))),
          );
        },
      }),
    );
  };

  serve(RPC.definitionsPut, DefinitionPutRequest, DefinitionPutAnswer, async (req) => {
    const { created, summary } = await w.definitions.put(req.definition);
    log.info({ definition: `${summary.id}@${summary.version}`, created, actor: req.actor, correlationId: req.correlationId }, "definition published");
    return { ok: true as const, created, summary };
  });
  serve(RPC.projectsCreate, ProjectCreateRequest, ProjectWriteAnswer, async (req) => ({ ok: true as const, ...(await w.projects.create(req)) }));
  serve(RPC.projectsUpdate, ProjectUpdateRequest, ProjectWriteAnswer, async (req) => ({ ok: true as const, ...(await w.projects.update(req)) }));
  serve(RPC.idsAssign, IdAssignRequest, IdAssignAnswer, async (req) => ({ ok: true as const, n: await w.numbers.assign(req.kind, req.key) }));

  return {
    stop() {
      for (const s of subs) s.unsubscribe();
    },
  };
}

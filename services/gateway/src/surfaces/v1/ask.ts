import { ErrorCode, OrchError, SUPERVISOR_QUESTION_MAX, SupervisorErrorCode } from "@orch/contracts";
import { SupervisorAbortedError, SupervisorAnswer, SupervisorError } from "@orch/runs";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { route } from "../../routing.js";
import { SseStream } from "../../sse.js";
import { actorOf, ERRORS, IdParam, loadRun, type V1 } from "./common.js";

/**
 * `POST /api/v1/runs/{id}/ask`: a question to the supervisor about a run, answered by a model in an
 * agent hub (the protocol and what the model is given: @orch/contracts `supervisor.ts`, the hub's
 * `supervisor/`). The gateway checks the run and the caller's access to it, asks a hub over NATS
 * and relays the answer: nothing is written, no run changes.
 *
 * Nothing is answered until the hub has sent the answer's first piece or its refusal, so every
 * refusal is an HTTP status with the usual error body. Then, as SSE: `delta` frames, and `done`
 * (or `error` when the model fails midway); with `Accept: application/json`, the whole answer once
 * complete. A client that goes away cancels the model request.
 */

const AskBody = z.strictObject({
  question: z.string().trim().min(1, "must not be empty").max(SUPERVISOR_QUESTION_MAX),
  stepId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "must match [A-Za-z0-9_-]{1,64}")
    .optional()
    .describe("Focus the answer on one step of the run"),
});

const AskParams = z.object({ id: IdParam });

const Answer = z.object({ answer: z.string(), model: z.string(), usage: z.object({ tokensIn: z.int(), tokensOut: z.int() }).nullable() });

/** The hub's refusals in our vocabulary (and so their HTTP statuses). */
const CODE_OF: Record<SupervisorErrorCode, ErrorCode> = {
  [SupervisorErrorCode.PolicyRefused]: ErrorCode.LlmPolicyRefused,
  [SupervisorErrorCode.NotFound]: ErrorCode.NotFound,
  [SupervisorErrorCode.BadRequest]: ErrorCode.BadRequest,
  [SupervisorErrorCode.ModelError]: ErrorCode.LlmError,
  [SupervisorErrorCode.Unavailable]: ErrorCode.SupervisorUnavailable,
};

/** The hub's refusal or failure as our error (an HTTP status before the answer began, an `error` frame after). */
const ours = <T>(p: Promise<T>): Promise<T> =>
  p.catch((err: unknown) => {
    throw err instanceof SupervisorError ? new OrchError(CODE_OF[err.code], err.message) : err;
  });

/** Whether the client asked for the whole answer as JSON rather than a stream. */
function wantsJson(req: FastifyRequest): boolean {
  const accept = String(req.headers.accept ?? "").toLowerCase();
  return accept.includes("application/json") && !accept.includes("text/event-stream");
}

export function askRoutes(app: FastifyInstance, { opts, defaults }: V1): void {
  route(
    app,
    {
      method: "POST",
      url: "/runs/:id/ask",
      operationId: "v1AskSupervisor",
      tags: ["supervisor"],
      summary: "Ask the supervisor about a run: its progress, a failure, what to do next",
      description: [
        "A model (the supervisor: `ORCH_SUPERVISOR_*`, else the local LLM, under the LLM policy) reads the run, its steps,",
        "events and the tail of its sessions' transcripts (secrets redacted) and answers the question. It changes nothing.",
        "",
        'Streams `text/event-stream`: `event: delta` `data: {"text"}` as the model writes, then `event: done`',
        '`data: {"model","usage"}`; if the model fails after the answer began, `event: error` `data: {"error":{"code","message"}}`.',
        '`Accept: application/json` answers `{"answer","model","usage"}` once complete instead.',
        "Refusals come before anything is streamed, as error bodies: 403 `LLM_POLICY_REFUSED`, 404 `NOT_FOUND` (run or step),",
        "502 `LLM_ERROR` (the model server failed or refused), 503 `SUPERVISOR_UNAVAILABLE` (no agent hub answered).",
        "Closing the connection cancels the model request.",
      ].join("\n"),
      json: true,
      params: AskParams,
      body: AskBody,
      headers: { Accept: "`text/event-stream` (default) or `application/json`", "X-Actor": "Who is asking (logged by the agent hub)" },
      projectScoped: true,
      responses: {
        200: {
          description: "The answer, streamed as SSE (`delta`…, then `done` or `error`); or whole, as JSON, with `Accept: application/json`",
          contentType: "text/event-stream",
          alternatives: [{ contentType: "application/json", schema: Answer }],
        },
        ...ERRORS,
        403: { description: "`LLM_POLICY_REFUSED`: the LLM policy refuses the supervisor's model server; or the token does not open this run" },
        404: { description: "No such run, or no such step in it" },
        502: { description: "`LLM_ERROR`: the model server failed, refused or could not be reached" },
        503: { description: "`SUPERVISOR_UNAVAILABLE`: no agent hub answered in time" },
      },
    },
    async (req, reply, { params, body }) => {
      const run = await loadRun(opts, req, params.id);
      if (body.stepId && !run.steps.some((s) => s.id === body.stepId) && run.planning?.id !== body.stepId)
        throw new OrchError(ErrorCode.NotFound, `Step ${body.stepId} not found in run ${run.runId}`);

      // The client going away (before or during the answer) cancels it in the hub.
      const gone = new AbortController();
      reply.raw.once("close", () => gone.abort());
      if (req.raw.socket?.destroyed) gone.abort();
      const answer = SupervisorAnswer.ask(opts.bus, {
        runId: run.runId,
        question: body.question,
        ...(body.stepId ? { stepId: body.stepId } : {}),
        actor: actorOf(req).actor,
      });
      try {
        let piece = await ours(answer.first(gone.signal));
        if (wantsJson(req)) {
          let text = "";
          for (; piece.kind === "delta"; piece = await ours(answer.next(gone.signal))) text += piece.text;
          return reply.send({ answer: text, model: piece.model, usage: piece.usage });
        }
        reply.hijack();
        const sse = new SseStream(reply.raw, { "x-request-id": req.id }, opts.sse);
        try {
          for (; piece.kind === "delta" && !sse.closed; piece = await ours(answer.next(gone.signal))) await sse.send("delta", { text: piece.text });
          if (piece.kind === "done") await sse.send("done", { model: piece.model, usage: piece.usage });
        } catch (err) {
          if (err instanceof OrchError) await sse.send("error", { error: { code: err.code, message: err.message } });
          else if (!(err instanceof SupervisorAbortedError)) req.log.error({ err }, "the supervisor's answer failed");
        } finally {
          sse.close();
        }
      } catch (err) {
        if (!(err instanceof SupervisorAbortedError)) throw err;
        // The client left before anything was answered: nothing to send it.
        reply.hijack();
        reply.raw.destroy();
      } finally {
        answer.close();
      }
    },
    defaults,
  );
}

import { decode, isNoAnswer, type Bus } from "@orch/bus";
import {
  ErrorCode,
  OrchError,
  QueryError,
  TASKS_QUERIES,
  TaskGetResult,
  TaskRunResult,
  TaskRunsResult,
  TasksHeadResult,
  TasksListResult,
  TasksSizeResult,
  type TaskGetQuery,
  type TaskRecord,
  type TaskRunQuery,
  type TaskRunsQuery,
  type TasksHeadQuery,
  type TasksListQuery,
  type TasksSizeQuery,
} from "@orch/contracts";
import type { z } from "zod";

/**
 * Seed 001's task queue as the event-bus projects it from the runs' transitions (`<p>.q.tasks.*`):
 * a thin client. Each query may carry `minSeq`, the runs-stream sequence of a write the caller made
 * (`CommandOutcome.streamSeq`): the answer then includes it. Nothing here writes: tasks are steps
 * of `task.queue` runs, written by the core (the gateway's tasks surface sends the commands).
 */

/** How long a query waits for its answer (the projection may first wait for `minSeq`). */
const QUERY_TIMEOUT_MS = 5_000;

export class TasksQueries {
  constructor(private readonly bus: Bus) {}

  async #ask<S extends z.ZodType>(name: string, body: unknown, schema: S): Promise<z.output<S>> {
    let m;
    try {
      m = await this.bus.nc.request(this.bus.names.subjects.query(name), JSON.stringify(body), { timeout: QUERY_TIMEOUT_MS });
    } catch (err) {
      if (isNoAnswer(err))
        throw new OrchError(ErrorCode.Unavailable, "no event-bus answered the task query (is the event-bus service running?)", { cause: err });
      throw err;
    }
    const ok = decode(schema, m.data);
    if (ok.ok) return ok.value;
    const refused = decode(QueryError, m.data);
    if (refused.ok) {
      const code =
        refused.value.error.code === "BAD_REQUEST"
          ? ErrorCode.BadRequest
          : refused.value.error.code === "UNAVAILABLE"
            ? ErrorCode.Unavailable
            : ErrorCode.Internal;
      throw new OrchError(code, refused.value.error.message);
    }
    throw new OrchError(ErrorCode.Internal, `unreadable ${name} answer: ${ok.error}`);
  }

  /** The oldest queued task (after `afterSeq`), or null. */
  async head(q: TasksHeadQuery = {}): Promise<TaskRecord | null> {
    return (await this.#ask(TASKS_QUERIES.head, q, TasksHeadResult)).task;
  }

  /** Tasks waiting in the queue. */
  async size(q: TasksSizeQuery = {}): Promise<number> {
    return (await this.#ask(TASKS_QUERIES.size, q, TasksSizeResult)).size;
  }

  /** A task by its client id, and the other places it was queued that may still be open. */
  get(q: TaskGetQuery): Promise<TaskGetResult> {
    return this.#ask(TASKS_QUERIES.get, q, TaskGetResult);
  }

  /** Every task (of a status, of a run), in the order they were queued. */
  async list(q: TasksListQuery = {}): Promise<TaskRecord[]> {
    return (await this.#ask(TASKS_QUERIES.list, q, TasksListResult)).tasks;
  }

  /** A page of seed 001 runs, oldest first, and how many match. */
  runs(q: TaskRunsQuery): Promise<TaskRunsResult> {
    return this.#ask(TASKS_QUERIES.runs, q, TaskRunsResult);
  }

  /** A seed 001 run with its tasks, or `run: null`. */
  run(q: TaskRunQuery): Promise<TaskRunResult> {
    return this.#ask(TASKS_QUERIES.run, q, TaskRunResult);
  }
}

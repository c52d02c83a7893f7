import type { TaskRecord, TaskRunRecord, TaskStatus, Totals } from "@orch/contracts";

/**
 * Seed 001's shapes of what the projection holds: a task (`id, runId, role, description, payload,
 * status, attempts, history, metadata, llm, result?`, ISO timestamps) and a run (`id, type, status,
 * payload, taskIds, metadata, createdAt, updatedAt`). Pure.
 */

export interface TaskLlm {
  executor?: string;
  model?: string;
  usage?: Totals;
}

export interface TaskResult {
  taskId: string;
  status: TaskStatus;
  notes?: string;
  output?: unknown;
  llm?: TaskLlm;
}

export interface TaskView {
  id: string;
  runId: string;
  role: string;
  description: string;
  payload: unknown;
  status: TaskStatus;
  attempts: number;
  history: { status: TaskStatus; timestamp: string }[];
  metadata: Record<string, unknown>;
  llm: TaskLlm | null;
  result?: TaskResult;
  createdAt: string;
  updatedAt: string;
}

export interface TaskRunView {
  id: string;
  type: string;
  status: TaskStatus;
  payload: unknown;
  taskIds: string[];
  metadata: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function taskView(t: TaskRecord, llm: TaskLlm | null): TaskView {
  const view: TaskView = {
    id: t.id,
    runId: t.runId,
    role: t.role,
    description: t.description,
    payload: t.payload ?? null,
    status: t.status,
    attempts: t.attempts,
    history: t.history.map((h) => ({ status: h.status, timestamp: iso(h.at) })),
    metadata: t.metadata,
    llm,
    createdAt: iso(t.queuedAt),
    updatedAt: iso(t.updatedAt),
  };
  if (t.status === "completed" || t.status === "failed") {
    const notes = t.notes?.length ? t.notes.join("\n") : t.error;
    view.result = {
      taskId: t.id,
      status: t.status,
      ...(notes !== undefined ? { notes } : {}),
      ...(t.output !== undefined ? { output: t.output } : {}),
      ...(llm ? { llm } : {}),
    };
  }
  return view;
}

export function runView(r: TaskRunRecord): TaskRunView {
  return {
    id: r.id,
    type: r.type,
    status: r.status,
    payload: r.payload ?? null,
    taskIds: r.taskIds,
    metadata: r.metadata,
    createdAt: iso(r.createdAt),
    updatedAt: iso(r.updatedAt),
  };
}

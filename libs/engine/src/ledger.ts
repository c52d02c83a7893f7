import type { Budget } from "./definition.js";
import type { Usage } from "./types.js";

/**
 * The usage ledger: tokens, cost and wall time per step, rolled up per run, phase, role and model;
 * and budget checks against it (seed 004's per-step and per-protocol token budgets are two cases).
 */

export interface Totals {
  tokens: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  wallMs: number;
  calls: number;
}

export interface Ledger {
  total: Totals;
  byStep: Record<string, Totals>;
  byPhase: Record<string, Totals>;
  byRole: Record<string, Totals>;
  byModel: Record<string, Totals>;
}

export const emptyTotals = (): Totals => ({ tokens: 0, tokensIn: 0, tokensOut: 0, costUsd: 0, wallMs: 0, calls: 0 });
export const emptyLedger = (): Ledger => ({ total: emptyTotals(), byStep: {}, byPhase: {}, byRole: {}, byModel: {} });

function add(t: Totals | undefined, u: Usage): Totals {
  const b = t ?? emptyTotals();
  return {
    tokens: b.tokens + u.tokensIn + u.tokensOut,
    tokensIn: b.tokensIn + u.tokensIn,
    tokensOut: b.tokensOut + u.tokensOut,
    costUsd: Math.round((b.costUsd + u.costUsd) * 1e6) / 1e6,
    wallMs: b.wallMs + u.wallMs,
    calls: b.calls + 1,
  };
}

export function record(l: Ledger, u: Usage, at: { step: string; phase: string; role: string; model?: string }): Ledger {
  return {
    total: add(l.total, u),
    byStep: { ...l.byStep, [at.step]: add(l.byStep[at.step], u) },
    byPhase: { ...l.byPhase, [at.phase]: add(l.byPhase[at.phase], u) },
    byRole: { ...l.byRole, [at.role]: add(l.byRole[at.role], u) },
    byModel: at.model ? { ...l.byModel, [at.model]: add(l.byModel[at.model], u) } : l.byModel,
  };
}

/** A budget's stable name (for extensions and warnings). */
export const budgetKey = (b: Budget) => `${b.scope}:${b.target ?? "*"}`;

export interface Extension {
  tokens: number;
  costUsd: number;
}

export interface Exhausted {
  budget: Budget;
  key: string;
  /** Which phase/role/step it was exhausted for (the budget's target, or the one that hit it). */
  subject: string;
  usage: { tokens: number; costUsd: number };
  limit: { tokens?: number; costUsd?: number };
}

function scopeTotals(l: Ledger, b: Budget): [string, Totals][] {
  switch (b.scope) {
    case "run":
      return [["run", l.total]];
    case "phase":
      return b.target ? [[b.target, l.byPhase[b.target] ?? emptyTotals()]] : Object.entries(l.byPhase);
    case "role":
      return b.target ? [[b.target, l.byRole[b.target] ?? emptyTotals()]] : Object.entries(l.byRole);
    case "step":
      return b.target ? [[b.target, l.byStep[b.target] ?? emptyTotals()]] : Object.entries(l.byStep);
  }
}

/** Budgets (mode other than off) whose tokens or cost are used up. */
export function exhausted(l: Ledger, budgets: readonly Budget[], ext: Record<string, Extension>): Exhausted[] {
  const out: Exhausted[] = [];
  for (const b of budgets) {
    if (b.mode === "off") continue;
    const key = budgetKey(b);
    const e = ext[key] ?? { tokens: 0, costUsd: 0 };
    const limit = {
      ...(b.tokens !== undefined ? { tokens: b.tokens + e.tokens } : {}),
      ...(b.costUsd !== undefined ? { costUsd: b.costUsd + e.costUsd } : {}),
    };
    for (const [subject, t] of scopeTotals(l, b)) {
      const overTokens = limit.tokens !== undefined && t.tokens >= limit.tokens;
      const overCost = limit.costUsd !== undefined && t.costUsd >= limit.costUsd;
      if (overTokens || overCost) out.push({ budget: b, key, subject, usage: { tokens: t.tokens, costUsd: t.costUsd }, limit });
    }
  }
  return out;
}

/** Whether an exhausted budget covers a step about to start (so it must not start). */
export function covers(x: Exhausted, step: { id: string; phase: string; role: string }): boolean {
  switch (x.budget.scope) {
    case "run":
      return true;
    case "phase":
      return x.subject === step.phase;
    case "role":
      return x.subject === step.role;
    case "step":
      return x.subject === step.id;
  }
}

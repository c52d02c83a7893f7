import { z } from "zod";

/**
 * Conditions: a small, total, side-effect-free language for guards, loop exits and budgets, written
 * as data so definitions stay declarative and a definition file can never run code.
 *
 *   "facts.planReady"                                  truthy
 *   { path: "steps.test.output.passed", eq: true }     comparison
 *   { all: [c, …] } | { any: [c, …] } | { not: c }     combinators
 *
 * Paths are dotted: `facts.<k>`, `input.<k>`, `steps.<id>.status|output|attempt|revision`,
 * `loop.<stepId>` (iterations so far), `usage.tokens|costUsd`, `run.stage|status`.
 * A path that leads nowhere is `undefined`; nothing throws.
 */

export type Condition =
  | string
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition }
  | {
      path: string;
      eq?: unknown;
      ne?: unknown;
      in?: unknown[];
      gt?: number;
      gte?: number;
      lt?: number;
      lte?: number;
      exists?: boolean;
      truthy?: boolean;
    };

const PATH = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;
const Path = z.string().regex(PATH, "must be a dotted path such as facts.planReady or steps.plan.output.ok");

export const Condition: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    Path,
    z.strictObject({ all: z.array(Condition).min(1) }),
    z.strictObject({ any: z.array(Condition).min(1) }),
    z.strictObject({ not: Condition }),
    z
      .strictObject({
        path: Path,
        eq: z.unknown().optional(),
        ne: z.unknown().optional(),
        in: z.array(z.unknown()).optional(),
        gt: z.number().optional(),
        gte: z.number().optional(),
        lt: z.number().optional(),
        lte: z.number().optional(),
        exists: z.boolean().optional(),
        truthy: z.boolean().optional(),
      })
      .refine((c) => Object.keys(c).length > 1, { message: "a comparison needs an operator besides path" }),
  ]),
);

export function lookup(scope: unknown, path: string): unknown {
  let cur: unknown = scope;
  for (const key of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

export function evaluate(c: Condition, scope: unknown): boolean {
  if (typeof c === "string") return Boolean(lookup(scope, c));
  if ("all" in c) return c.all.every((x) => evaluate(x, scope));
  if ("any" in c) return c.any.some((x) => evaluate(x, scope));
  if ("not" in c) return !evaluate(c.not, scope);
  const v = lookup(scope, c.path);
  const num = typeof v === "number" ? v : undefined;
  if (c.exists !== undefined && (v !== undefined) !== c.exists) return false;
  if (c.truthy !== undefined && Boolean(v) !== c.truthy) return false;
  if ("eq" in c && c.eq !== undefined && !equal(v, c.eq)) return false;
  if ("ne" in c && c.ne !== undefined && equal(v, c.ne)) return false;
  if (c.in !== undefined && !c.in.some((x) => equal(v, x))) return false;
  if (c.gt !== undefined && !(num !== undefined && num > c.gt)) return false;
  if (c.gte !== undefined && !(num !== undefined && num >= c.gte)) return false;
  if (c.lt !== undefined && !(num !== undefined && num < c.lt)) return false;
  if (c.lte !== undefined && !(num !== undefined && num <= c.lte)) return false;
  return true;
}

/**
 * Input templates: a string that is exactly `${path}` becomes the value at that path (any type);
 * `${path}` inside a longer string is interpolated; arrays and objects are resolved deeply.
 */
export function resolveTemplate(value: unknown, scope: unknown): unknown {
  if (typeof value === "string") {
    const whole = /^\$\{([^}]+)\}$/.exec(value);
    if (whole) return lookup(scope, whole[1]!.trim());
    return value.replace(/\$\{([^}]+)\}/g, (_, p: string) => {
      const v = lookup(scope, p.trim());
      if (v === undefined || v === null) return "";
      return typeof v === "string" ? v : JSON.stringify(v);
    });
  }
  if (Array.isArray(value)) return value.map((v) => resolveTemplate(v, scope));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolveTemplate(v, scope);
    return out;
  }
  return value;
}

/** Every path a template refers to (for validating definitions). */
export function templatePaths(value: unknown): string[] {
  if (typeof value === "string") return [...value.matchAll(/\$\{([^}]+)\}/g)].map((m) => m[1]!.trim());
  if (Array.isArray(value)) return value.flatMap(templatePaths);
  if (value !== null && typeof value === "object") return Object.values(value).flatMap(templatePaths);
  return [];
}

import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { ErrorCode, OrchError } from "@orch/contracts";
import type { Bus } from "@orch/bus";
import type { FastifyInstance, FastifyRequest } from "fastify";

/**
 * Authentication. With `ORCH_API_TOKEN` (or seed 004's `TASKSGODZILLA_API_TOKEN`) set, every route
 * but the open ones (health, metrics, the docs, the web console's static files) needs
 * `Authorization: Bearer <token>`. A project can have a token of its own (`X-Project-Token`): alone
 * it opens that project's routes and nothing else; beside the API token it is required on the
 * project's routes (seed 004). EventSource cannot set headers, so an event stream also takes
 * `?access_token=`: a short-lived token signed with the API token and bound to one path. Tokens are
 * compared in constant time and never logged.
 */

export type Auth = { kind: "open" } | { kind: "admin" } | { kind: "project"; projectId: string } | { kind: "stream"; path: string };

declare module "fastify" {
  interface FastifyRequest {
    auth: Auth;
  }
  interface FastifyContextConfig {
    /** The route works on one project's resources (it calls `assertProjectAccess`). */
    projectScoped?: boolean;
  }
}

export const sha256 = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

/** Equal in constant time, whatever the lengths. */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

export const tokenHash = (token: string): string => sha256(token).toString("hex");

/**
 * The project a token opens, by the token's SHA-256, from the `project_tokens` index the core keeps
 * with the projects (a token replaced or removed is dropped from it), or null.
 */
async function projectOfToken(bus: Bus, hash: string): Promise<string | null> {
  const e = await (await bus.kv(bus.names.buckets.projectTokens)).get(hash);
  if (!e || e.operation !== "PUT" || e.length === 0) return null;
  try {
    const v = JSON.parse(e.string()) as { projectId?: unknown };
    return typeof v.projectId === "string" ? v.projectId : null;
  } catch {
    return null;
  }
}

export const unauthorized = (message = "Unauthorized") => new OrchError(ErrorCode.Unauthorized, message);
export const forbidden = (message: string) => new OrchError(ErrorCode.Forbidden, message);

export interface StreamToken {
  token: string;
  expiresAt: number;
}

export class Authenticator {
  readonly #apiToken: string | undefined;
  readonly #streamKey: Buffer | undefined;
  constructor(
    apiToken: string | undefined,
    private readonly bus: Bus,
    private readonly streamTtlMs: number,
  ) {
    this.#apiToken = apiToken;
    this.#streamKey = apiToken ? createHmac("sha256", apiToken).update("orch-stream-token-v1").digest() : undefined;
  }

  get enabled(): boolean {
    return this.#apiToken !== undefined;
  }

  /** A token that opens the event stream at `path` (and only it) until it expires. */
  issueStreamToken(path: string, now = Date.now()): StreamToken {
    const expiresAt = now + this.streamTtlMs;
    const payload = Buffer.from(JSON.stringify({ p: path, e: expiresAt }), "utf8").toString("base64url");
    return { token: `${payload}.${this.#sign(payload)}`, expiresAt };
  }

  #sign(payload: string): string {
    return createHmac("sha256", this.#streamKey ?? Buffer.alloc(32))
      .update(payload)
      .digest("base64url");
  }

  #verifyStreamToken(token: string, path: string, now = Date.now()): boolean {
    const dot = token.indexOf(".");
    if (dot <= 0) return false;
    const payload = token.slice(0, dot);
    if (!safeEqual(token.slice(dot + 1), this.#sign(payload))) return false;
    try {
      const { p, e } = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { p?: unknown; e?: unknown };
      return typeof p === "string" && typeof e === "number" && e > now && p === path;
    } catch {
      return false;
    }
  }

  /** Who the request is; throws 401 when it needs a token and has no valid one. */
  async authenticate(req: FastifyRequest): Promise<Auth> {
    const path = req.url.split("?")[0]!;
    const h = req.headers.authorization;
    if (this.#apiToken !== undefined && typeof h === "string" && /^bearer\s+/i.test(h)) {
      if (safeEqual(h.replace(/^bearer\s+/i, "").trim(), this.#apiToken)) return { kind: "admin" };
      throw unauthorized();
    }
    if (this.#apiToken === undefined) return { kind: "open" };
    const pt = req.headers["x-project-token"];
    if (typeof pt === "string" && pt.length > 0) {
      const projectId = await projectOfToken(this.bus, tokenHash(pt));
      if (projectId) return { kind: "project", projectId };
      throw unauthorized();
    }
    const q = (req.query ?? {}) as Record<string, unknown>;
    if (typeof q.access_token === "string") {
      if (this.#verifyStreamToken(q.access_token, path)) return { kind: "stream", path };
      throw unauthorized("Unauthorized: the access token is invalid, expired, or for another stream");
    }
    throw unauthorized();
  }
}

/**
 * Checks that the request may touch a project: a project token only its own; a project with a
 * token of its own also needs it beside the API token (seed 004's "Project access denied").
 */
export function assertProjectAccess(req: FastifyRequest, project: { id: string; tokenSha256?: string | undefined }): void {
  const a = req.auth;
  if (a.kind === "project") {
    if (a.projectId !== project.id) throw forbidden(`This token is limited to project ${a.projectId}`);
    // A replaced token stays in the index until it is removed: the project's current one decides.
    const pt = req.headers["x-project-token"];
    if (project.tokenSha256 && (typeof pt !== "string" || !safeEqual(tokenHash(pt), project.tokenSha256))) throw unauthorized("Project access denied");
    return;
  }
  if (a.kind === "stream") return;
  if (project.tokenSha256) {
    const pt = req.headers["x-project-token"];
    if (typeof pt !== "string" || !safeEqual(tokenHash(pt), project.tokenSha256)) throw unauthorized("Project access denied");
  }
}

/** Installs the check before every route of `app` (routes declare `auth: "none"` to be open). */
export function installAuth(app: FastifyInstance, auth: Authenticator): void {
  app.decorateRequest("auth", null as never);
  app.addHook("onRequest", async (req) => {
    const cfg = req.routeOptions.config as { auth?: string; projectScoped?: boolean } | undefined;
    if (cfg?.auth === "none") {
      req.auth = { kind: "open" };
      return;
    }
    req.auth = await auth.authenticate(req);
    if (req.auth.kind === "project" && !cfg?.projectScoped) throw forbidden(`This token is limited to project ${req.auth.projectId}`);
    if (req.auth.kind === "stream" && req.method !== "GET") throw unauthorized();
  });
}

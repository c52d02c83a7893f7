import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { FastifyInstance, FastifyReply } from "fastify";
import { z } from "zod";
import type { Surface } from "../../context.js";
import { notFound, unavailable } from "../../errors.js";
import { route } from "../../routing.js";

/**
 * The web console (`@orch/console`): static files built into its package's `dist/`, served at
 * `/console` (its index.html, also for every client-side route below it) and `/console/assets/*`
 * (hashed names, cached for a year). Open without a token: the page asks for the API token and
 * sends it with each API call. A gateway whose console is not built answers 503 saying so.
 */

const ASSET = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;
const TYPES: Record<string, string> = {
  ".js": "application/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

/** Scripts and styles from the gateway itself; API calls and event streams to it only. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join("; ");

/** Where the console's built files are, or undefined when the package is not installed. */
export function consoleDist(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve("@orch/console/package.json")), "dist");
  } catch {
    return undefined;
  }
}

const NOT_BUILT = "The console is not built: services/console/dist is missing (run `npm run build`)";

export async function consoleRoutes(app: FastifyInstance, _opts: Surface): Promise<void> {
  await serveConsole(app, consoleDist());
}

/** The console's routes over the built files in `dist` (undefined: not installed, every route a 503). */
export async function serveConsole(app: FastifyInstance, dist: string | undefined): Promise<void> {
  const index = async (reply: FastifyReply) => {
    if (!dist) throw unavailable(NOT_BUILT);
    let html: Buffer;
    try {
      html = await readFile(join(dist, "index.html"));
    } catch {
      throw unavailable(NOT_BUILT);
    }
    return reply.type("text/html; charset=utf-8").header("cache-control", "no-cache").header("content-security-policy", CONSOLE_CSP).send(html);
  };
  const page = { 200: { description: "The console (HTML)", contentType: "text/html" }, 503: { description: "The console is not built" } };

  route(
    app,
    { method: "GET", url: "/console", operationId: "console", tags: ["ops"], summary: "The web console", auth: "none", responses: page },
    async (_req, reply) => index(reply),
  );
  route(
    app,
    { method: "GET", url: "/console/", operationId: "consoleSlash", tags: ["ops"], summary: "The web console", auth: "none", hidden: true, responses: page },
    async (_req, reply) => index(reply),
  );
  route(
    app,
    {
      method: "GET",
      url: "/console/*",
      operationId: "consolePage",
      tags: ["ops"],
      summary: "A page of the web console (its client-side routes answer the console)",
      auth: "none",
      hidden: true,
      responses: page,
    },
    async (_req, reply) => index(reply),
  );
  route(
    app,
    {
      method: "GET",
      url: "/console/assets/:file",
      operationId: "consoleAsset",
      tags: ["ops"],
      summary: "The web console's scripts and styles (hashed names, cached for a year)",
      auth: "none",
      params: z.object({ file: z.string().max(300) }),
      responses: { 200: { description: "Asset" }, 404: { description: "No such asset" }, 503: { description: "The console is not built" } },
    },
    async (_req, reply, { params }) => {
      if (!dist || !existsSync(join(dist, "index.html"))) throw unavailable(NOT_BUILT);
      const ext = /\.[a-z0-9]+$/.exec(params.file)?.[0] ?? "";
      const type = TYPES[ext];
      if (!ASSET.test(params.file) || params.file.includes("..") || type === undefined) throw notFound(`No asset ${params.file.slice(0, 100)}`);
      let body: Buffer;
      try {
        body = await readFile(join(dist, "assets", params.file));
      } catch {
        throw notFound(`No asset ${params.file.slice(0, 100)}`);
      }
      return reply.type(type).header("cache-control", "public, max-age=31536000, immutable").send(body);
    },
  );
}

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installErrorHandling } from "../src/errors.js";
import { CONSOLE_CSP, consoleDist, serveConsole } from "../src/surfaces/ops/console.js";

/**
 * How the gateway serves the web console's built files: index.html at /console, /console/ and any
 * client-side route below it, hashed assets with a long cache, a missing asset a 404, and a console
 * that is not built a 503 with our error body (not a crash).
 */

const dir = mkdtempSync(join(tmpdir(), "orch-console-"));

async function appWith(dist: string | undefined): Promise<FastifyInstance> {
  const app = Fastify();
  app.decorate("documented", []);
  installErrorHandling(app);
  await app.register(async (a) => serveConsole(a, dist));
  await app.ready();
  return app;
}

beforeAll(() => {
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), '<!doctype html><script type="module" src="/console/assets/index-abc123.js"></script>');
  writeFileSync(join(dir, "assets", "index-abc123.js"), "console.log(1)");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the console's static files", () => {
  it("answers index.html for /console, /console/ and its client-side routes, with its content policy", async () => {
    const app = await appWith(dir);
    for (const url of ["/console", "/console/", "/console/runs/abc", "/console/approvals?x=1"]) {
      const r = await app.inject({ url });
      expect(r.statusCode, url).toBe(200);
      expect(r.headers["content-type"]).toMatch(/^text\/html/);
      expect(r.headers["content-security-policy"]).toBe(CONSOLE_CSP);
      expect(r.headers["cache-control"]).toBe("no-cache");
      expect(r.body).toContain("/console/assets/index-abc123.js");
    }
    expect(CONSOLE_CSP).toContain("script-src 'self'");
    expect(CONSOLE_CSP).toContain("connect-src 'self'");
    await app.close();
  });

  it("serves assets with a year's cache; an unknown or odd name is a 404", async () => {
    const app = await appWith(dir);
    const js = await app.inject({ url: "/console/assets/index-abc123.js" });
    expect(js.statusCode).toBe(200);
    expect(js.headers["content-type"]).toMatch(/^application\/javascript/);
    expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    for (const file of ["nope.js", "index-abc123.exe", "..%2Findex.html", "%2e%2e%2fpackage.json", ".hidden.js"]) {
      const r = await app.inject({ url: `/console/assets/${file}` });
      expect(r.statusCode, file).toBe(404);
      expect(r.json()).toEqual({ error: { code: "NOT_FOUND", message: expect.any(String) } });
    }
    await app.close();
  });

  it("a console that is not built is a 503 saying so", async () => {
    for (const dist of [undefined, join(dir, "missing")]) {
      const app = await appWith(dist);
      for (const url of ["/console", "/console/runs/x", "/console/assets/index-abc123.js"]) {
        const r = await app.inject({ url });
        expect(r.statusCode, url).toBe(503);
        expect(r.json()).toEqual({ error: { code: "UNAVAILABLE", message: expect.stringContaining("not built") } });
      }
      await app.close();
    }
  });

  it("finds the console package's dist directory", () => {
    expect(consoleDist()).toMatch(/services[/\\]console[/\\]dist$/);
  });
});

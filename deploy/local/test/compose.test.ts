import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AgentHubConfig, EventBusConfig, GatewayConfig, OrchestratorConfig, SchedulerConfig } from "@orch/config";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

/**
 * docker-compose.yml, deploy/compose/ and the Dockerfile checked against the code they run, without
 * Docker: a renamed service, a new environment variable or a new workspace must not silently break
 * the image or the compose file.
 */

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

const SCHEMAS: Record<string, { shape: Record<string, unknown> }> = {
  gateway: GatewayConfig,
  orchestrator: OrchestratorConfig,
  "agent-hub": AgentHubConfig,
  scheduler: SchedulerConfig,
  "event-bus": EventBusConfig,
};

interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[] | string;
  environment?: Record<string, unknown> | string[];
  volumes?: string[];
}
// `merge: true`: the services share their settings through a `<<:` merge key, as compose reads it.
const compose = parse(read("docker-compose.yml"), { merge: true }) as {
  "x-orchestrator": ComposeService;
  services: Record<string, ComposeService>;
};
const appServices = Object.entries(compose.services).filter(([name]) => name !== "nats");

function envNames(env: ComposeService["environment"]): string[] {
  if (!env) return [];
  if (Array.isArray(env)) return env.map((e) => e.split("=")[0]!);
  return Object.keys(env);
}

interface Instruction {
  cmd: string;
  args: string;
}

/** Dockerfile → instructions, continuation lines joined, comments dropped; split into stages. */
function dockerfileStages(text: string): Instruction[][] {
  const logical: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || line === "") continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(current + line);
    current = "";
  }
  if (current) logical.push(current);
  const stages: Instruction[][] = [[]];
  for (const l of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(l)!;
    const ins = { cmd: m[1]!.toUpperCase(), args: m[2]! };
    if (ins.cmd === "FROM") stages.push([]);
    stages[stages.length - 1]!.push(ins);
  }
  return stages.filter((s) => s[0]?.cmd === "FROM");
}

/** COPY's source and destination paths, flags (--from=…, --chown=…) left out. */
function copyPaths(args: string): string[] {
  if (args.trimStart().startsWith("[")) return JSON.parse(args) as string[];
  return args.split(/\s+/).filter((a) => a !== "" && !a.startsWith("--"));
}

function envOf(stage: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of stage.filter((i) => i.cmd === "ENV")) {
    for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S+)/g)) {
      env[m[1]!] = m[2]!.replace(/^["']|["']$/g, "");
    }
  }
  return env;
}

/** Workspace directories named by the root package.json (`dir/*` globs and plain paths). */
function workspaces(): string[] {
  const globs = (JSON.parse(read("package.json")) as { workspaces: string[] }).workspaces;
  const dirs: string[] = [];
  for (const g of globs) {
    if (g.endsWith("/*")) {
      const parent = g.slice(0, -2);
      for (const d of readdirSync(join(ROOT, parent)).sort()) {
        if (statSync(join(ROOT, parent, d)).isDirectory() && existsSync(join(ROOT, parent, d, "package.json"))) {
          dirs.push(`${parent}/${d}`);
        }
      }
    } else {
      expect(g, `workspace glob ${g} is neither dir/* nor a plain path`).not.toMatch(/[*?{[]/);
      dirs.push(g);
    }
  }
  return dirs;
}

describe("docker-compose.yml", () => {
  it("runs exactly the services in services/, each from the shared build with its own entry point", () => {
    // services/ also holds clients (the `orch` command line), which run nowhere: a service is a
    // package there with a process to start (its `start` script).
    const serviceDirs = readdirSync(join(ROOT, "services")).filter((d) => {
      const pkg = join(ROOT, "services", d, "package.json");
      return existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { scripts?: { start?: string } }).scripts?.start !== undefined;
    });
    expect(appServices.map(([name]) => name).sort()).toEqual(serviceDirs.sort());

    const shared = compose["x-orchestrator"];
    expect(shared.build).toBeDefined();
    for (const [name, svc] of appServices) {
      expect(svc.build, name).toEqual(shared.build);
      expect(svc.image, name).toBe(shared.image);
      expect(svc.command, name).toEqual([`services/${name}/dist/main.js`]);
      expect(existsSync(join(ROOT, "services", name, "src", "main.ts")), `services/${name}/src/main.ts`).toBe(true);
      expect(envNames(svc.environment), name).toContain("ORCH_NATS_URL");
    }
  });

  it("sets only environment variables the service's config schema knows", () => {
    for (const [name, svc] of appServices) {
      const schema = SCHEMAS[name];
      expect(schema, `no config schema for compose service ${name}`).toBeDefined();
      // …or Node's own (the core's heap limit is NODE_OPTIONS).
      const known = [...Object.keys(schema!.shape), "NODE_OPTIONS"];
      for (const v of envNames(svc.environment)) expect(known, `${name}: ${v}`).toContain(v);
    }
    expect(envNames(compose["x-orchestrator"].environment).length).toBeGreaterThan(0);
  });

  it("mounts a nats-server config with a durable store dir and sync_interval: always", () => {
    const mount = compose.services.nats?.volumes?.find((v) => v.startsWith("./deploy/compose/"));
    expect(mount, "nats mounts deploy/compose/nats.conf").toBeDefined();
    const conf = read(mount!.split(":")[0]!);
    const live = conf
      .split("\n")
      .map((l) => l.replace(/#.*/, "").trim())
      .join("\n");
    expect(live).toMatch(/jetstream\s*\{[^}]*\bstore_dir\s*:\s*"?\/data"?/);
    expect(live).toMatch(/jetstream\s*\{[^}]*\bsync_interval\s*:\s*always\b/);
    expect(compose.services.nats?.volumes).toContain("nats-data:/data");
  });
});

describe("Dockerfile", () => {
  const stages = dockerfileStages(read("Dockerfile"));
  const build = stages[0]!;
  const runtime = stages[stages.length - 1]!;

  it("has a build stage and a separate runtime stage", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
  });

  it("copies every workspace's package.json before npm ci", () => {
    const ci = build.findIndex((i) => i.cmd === "RUN" && /\bnpm ci\b/.test(i.args));
    expect(ci, "the build stage runs npm ci").toBeGreaterThan(0);
    const copied = build
      .slice(0, ci)
      .filter((i) => i.cmd === "COPY")
      .flatMap((i) => copyPaths(i.args).slice(0, -1));
    expect(copied).toContain("package-lock.json");
    for (const ws of workspaces()) expect(copied, `${ws}/package.json`).toContain(`${ws}/package.json`);
  });

  it("puts proto/orchestrator.proto in the runtime image", () => {
    const copies = runtime.filter((i) => i.cmd === "COPY").map((i) => copyPaths(i.args));
    expect(copies.some((p) => p.slice(0, -1).some((src) => src.endsWith("proto/orchestrator.proto")))).toBe(true);
  });

  it("binds HTTP and gRPC on every interface, runs as node, and leaves the service to the command", () => {
    expect(envOf(runtime)).toMatchObject({ HOST: "0.0.0.0", ORCH_GRPC_HOST: "0.0.0.0", NODE_ENV: "production" });
    expect(runtime.filter((i) => i.cmd === "USER").at(-1)?.args).toBe("node");
    expect(runtime.filter((i) => i.cmd === "ENTRYPOINT").at(-1)?.args).toBe('["node"]');
    expect(runtime.some((i) => i.cmd === "CMD")).toBe(false);
  });
});

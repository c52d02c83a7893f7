import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { VCS_REPO_PROVIDERS } from "@orch/contracts";
import { TICKETING_PROVIDERS, VCS_PROVIDERS } from "@orch/config";
import { ExitCode, usage } from "./errors.js";

/**
 * `orch start`: the whole system, as `npm start` runs it (scripts/start.mjs: install what is
 * missing, build, then deploy/local's runner), with seed 003's provider overrides. Each override
 * becomes the environment variable the services read; unknown values are refused with the list.
 */

interface Override {
  flag: string;
  env: string;
  /** Seed 003's value → the variable's value. */
  values: Readonly<Record<string, string>>;
}

export const START_OVERRIDES: readonly Override[] = [
  {
    flag: "--ticketing-provider",
    env: "ORCH_TICKETING_PROVIDER",
    values: Object.fromEntries(TICKETING_PROVIDERS.map((p) => [`ticketing.${p}`, p])),
  },
  {
    flag: "--harness-provider",
    env: "ORCH_AGENT_EXECUTOR",
    values: { "harness.opencode": "opencode", "harness.codex": "codex", "harness.claude": "claude" },
  },
  { flag: "--vcs-provider", env: "ORCH_VCS_PROVIDER", values: Object.fromEntries(VCS_PROVIDERS.map((p) => [`vcs.${p}`, p])) },
  { flag: "--vcs-repo-provider", env: "ORCH_VCS_REPO_PROVIDER", values: Object.fromEntries(VCS_REPO_PROVIDERS.map((p) => [p, p])) },
];

/** The environment the overrides set: `{flag value}` by flag name without dashes (commander's camelCase keys). */
export function startEnv(given: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const o of START_OVERRIDES) {
    const key = o.flag.slice(2).replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    const v = given[key];
    if (v === undefined) continue;
    const mapped = o.values[v];
    if (mapped === undefined) throw usage(`${o.flag} ${JSON.stringify(v)} is not known: use one of ${Object.keys(o.values).join(", ")}`);
    env[o.env] = mapped;
  }
  return env;
}

/** The repository `orch` was built in (services/cli/dist/main.js → the root), where scripts/start.mjs is. */
export function repoRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
}

export async function start(given: Record<string, string | undefined>, o: { printEnv?: boolean; json?: boolean }): Promise<number> {
  const env = startEnv(given);
  if (o.printEnv) {
    if (o.json) process.stdout.write(`${JSON.stringify(env)}\n`);
    else for (const [k, v] of Object.entries(env)) process.stdout.write(`${k}=${v}\n`);
    return ExitCode.Ok;
  }
  const script = join(repoRoot(), "scripts", "start.mjs");
  if (!existsSync(script)) throw usage(`orch start runs the system from its repository, and ${script} is not there`);
  const child = spawn(process.execPath, [script], { stdio: "inherit", env: { ...process.env, ...env } });
  // Ctrl-C reaches the whole process group; SIGTERM is passed on.
  process.on("SIGINT", () => undefined);
  process.on("SIGTERM", () => child.kill("SIGTERM"));
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

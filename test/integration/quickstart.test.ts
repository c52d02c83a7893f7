import { afterEach, describe, expect, it } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_CONFIG_TOML } from "@orch/config";
import { REPO_ROOT } from "@orch/nats-server";
import { freePort, http, startNats, waitFor } from "@orch/testing";

/**
 * The README's first command, `npm start`, as a newcomer runs it: the whole system comes up on the
 * embedded default, the README's examples work against it as written, Ctrl-C stops everything,
 * and a job is still there after starting again.
 */

const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");

/** The first bash block after `heading` in the README (the "### Try it" examples). */
function tryItBlock(heading = "### Try it"): string {
  const section = readme.slice(readme.indexOf(heading));
  const m = /```bash\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error(`README has no bash block after ${heading}`);
  return m[1]!;
}

interface Started {
  child: ChildProcess;
  out: string[];
  exited: Promise<number | null>;
}

let running: Started | undefined;
const dataDir = mkdtempSync(join(tmpdir(), "orch-quickstart-"));
/** A newcomer's home: no configuration file yet (seed 003's first run creates it). */
const home = mkdtempSync(join(tmpdir(), "orch-quickstart-home-"));
const configPath = join(home, ".config", "orchestrator", "config.toml");

afterEach(async () => {
  if (running && running.child.exitCode === null && running.child.signalCode === null) {
    try {
      process.kill(-running.child.pid!, "SIGKILL");
    } catch {
      // already gone
    }
    await running.exited;
  }
});

async function npmStart(env: Record<string, string>): Promise<Started> {
  const child = spawn("npm", ["start"], {
    cwd: REPO_ROOT,
    env: { ...process.env, HOME: home, ...env, ORCH_DATA_DIR: dataDir, ORCH_LOG_FORMAT: "json" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const out: string[] = [];
  child.stdout!.on("data", (c: Buffer) => out.push(c.toString()));
  child.stderr!.on("data", (c: Buffer) => out.push(c.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  running = { child, out, exited };
  await waitFor(() => out.join("").includes("Orchestrator is running"), { timeoutMs: 120_000, what: "the banner of npm start" });
  return running;
}

/**
 * Ctrl-C in a terminal: SIGINT to the whole foreground process group. npm itself exits on the
 * signal; the runner stops the services and nats-server, then says so.
 */
async function ctrlC(s: Started): Promise<void> {
  const from = s.out.join("").length;
  process.kill(-s.child.pid!, "SIGINT");
  await waitFor(() => s.out.join("").slice(from).includes('"service":"runner","msg":"stopped"'), { timeoutMs: 20_000, what: "the runner to stop" });
  await s.exited;
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const sock = createConnection({ port, host: "127.0.0.1" });
    sock.once("connect", () => (sock.destroy(), resolve(true)));
    sock.once("error", () => resolve(false));
  });

describe("quick start", () => {
  it("has exactly two commands, start and test, and CI runs the test one", () => {
    const block = /## Quick start\n+```bash\n([\s\S]*?)```/.exec(readme)![1]!.trim().split("\n");
    expect(block).toEqual(["npm start", "npm test"]);
    expect(readFileSync(join(REPO_ROOT, ".ci", "run"), "utf8")).toMatch(/^\s*npm test\b/m);
  });

  it("npm start runs the system; the README's examples work; Ctrl-C stops it; jobs survive a restart", async () => {
    const port = await freePort();
    const env = { PORT: String(port), ORCH_GRPC_PORT: String(await freePort()) };
    const api = `http://127.0.0.1:${port}`;
    let s = await npmStart(env);
    const banner = s.out.join("");
    expect(banner).toContain(`HTTP   http://127.0.0.1:${port}`);
    expect(banner).toMatch(/embedded nats-server \d+\.\d+\.\d+ at nats:\/\/127\.0\.0\.1:(\d+)/);
    const natsPort = Number(/at nats:\/\/127\.0\.0\.1:(\d+)/.exec(banner)![1]);
    // Seed 003's first run: the configuration file is created with the defaults, and its path printed.
    expect(banner).toContain(`Config ${configPath} (created with the defaults)`);
    expect(readFileSync(configPath, "utf8")).toBe(DEFAULT_CONFIG_TOML);

    const output = execFileSync("bash", ["-euo", "pipefail", "-c", `${tryItBlock()}\necho "JOB_ID=$JOB_ID"`], {
      env: { ...process.env, API_BASE: api },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(output).toContain("event: ready");
    expect(output).toContain("event: start");
    expect(output).toContain("event: end");
    expect(output).toContain('"status":"succeeded"');
    const jobId = /JOB_ID=([0-9a-f-]{36})/.exec(output)![1]!;

    // The SpecKit example: a workflow written by the stub agents, approved, seen by /api/v1 too.
    const speckit = execFileSync("bash", ["-euo", "pipefail", "-c", `API_BASE=${api}\n${tryItBlock("The other seeds' clients")}`], {
      env: { ...process.env, API_BASE: api },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(speckit).toContain('"status":"in_progress","feature_id":"');
    expect(speckit).toContain('"current_phase":"phase_2"');
    expect(speckit).toContain('"view":"speckit"');
    // The run as our API shows it, with its steps (the list shows summaries).
    expect(speckit).toMatch(/"steps":\[\{"id":"phase_1",[^]*"id":"phase_2"/);

    await ctrlC(s);
    expect(await portOpen(port)).toBe(false);
    expect(await portOpen(natsPort)).toBe(false);
    for (const svc of ["gateway", "orchestrator", "agent-hub", "scheduler", "event-bus"]) {
      expect(s.out.join("")).toContain(`"service":"${svc}","pid"`);
    }

    s = await npmStart(env);
    expect(s.out.join("")).toMatch(new RegExp(`Config ${configPath.replace(/[.]/g, "\\.")}\n`));
    const job = await http("GET", `${api}/api/orchestrator/jobs/${jobId}`);
    expect(job.status).toBe(200);
    expect(job.json()).toMatchObject({ job_id: jobId, status: "succeeded", stepsRun: 1 });
    await ctrlC(s);
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  });

  it("with ORCH_NATS_URL, npm start spawns no nats-server and uses the one named", async () => {
    const nats = await startNats();
    try {
      const port = await freePort();
      const s = await npmStart({ ORCH_NATS_URL: nats.url, PORT: String(port), ORCH_GRPC_PORT: String(await freePort()) });
      const banner = s.out.join("");
      expect(banner).toContain(`NATS   external NATS at ${nats.url}`);
      expect(banner).not.toContain("embedded nats-server");
      const r = await http("POST", `http://127.0.0.1:${port}/api/orchestrator/jobs`, { json: { goal: "external", limits: { maxSteps: 1 } } });
      const id = r.json().job_id;
      await waitFor(async () => (await http("GET", `http://127.0.0.1:${port}/api/orchestrator/jobs/${id}`)).json().status === "succeeded");
      await ctrlC(s);
      expect(await portOpen(nats.port)).toBe(true);
    } finally {
      await nats.stop();
    }
  });
});

import { afterAll, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "@orch/nats-server";
import { freePort, http, waitFor } from "@orch/testing";

/**
 * The dev runner (`npm start`'s deploy/local) supervises the embedded nats-server as it does the
 * services: SIGKILLed, it is started again on the same port and store, and the gateway's /ready
 * says so at once, 503 while NATS is down and 200 once it is back.
 */

const dataDir = mkdtempSync(join(tmpdir(), "orch-runner-"));
/** Seed 003's store settings: the event store's path and FULL sync; a pool size that means nothing here. */
const storeDir = join(dataDir, "orchestrator-events.db");
const configPath = join(dataDir, "config.toml");
writeFileSync(configPath, `event_store_path = ${JSON.stringify(storeDir)}\n[database]\nsynchronous = "FULL"\nmax_connections = 8\n`);
let child: ChildProcess | undefined;
const out: string[] = [];

interface RunnerLine {
  service?: string;
  msg?: string;
  pid?: number;
  url?: string;
}

const runnerLines = (): RunnerLine[] =>
  out
    .join("")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => {
      try {
        return JSON.parse(l) as RunnerLine;
      } catch {
        return {};
      }
    })
    .filter((l) => l.service === "runner");

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once("exit", r));
    process.kill(-child.pid!, "SIGINT");
    const t = setTimeout(() => process.kill(-child!.pid!, "SIGKILL"), 20_000);
    await exited;
    clearTimeout(t);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe("the dev runner", () => {
  it("stops at once on an invalid configuration file, with one message listing every problem", () => {
    const bad = join(dataDir, "bad.toml");
    writeFileSync(bad, '[git]\nalow_force_push = true\n[database]\nsynchronous = "SOMETIMES"\n[agents]\nexecutor = "gpt"\n');
    const r = spawnSync(process.execPath, [join(REPO_ROOT, "deploy", "local", "dist", "main.js")], {
      env: { ...process.env, ORCH_CONFIG: bad, ORCH_DATA_DIR: dataDir },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      [
        "orch: invalid configuration:",
        `  - configuration file ${bad}: unknown key "git.alow_force_push"`,
        "  - ORCH_NATS_SYNC: must be one of OFF, NORMAL, FULL, EXTRA",
        "  - ORCH_AGENT_EXECUTOR: must be one of stub, local, codex, claude, opencode",
        "",
      ].join("\n"),
    );
  });

  it("starts a SIGKILLed nats-server again, on the same port and store; /ready is 503 at once meanwhile, then 200", async () => {
    const port = await freePort();
    const api = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, [join(REPO_ROOT, "deploy", "local", "dist", "main.js")], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ORCH_DATA_DIR: dataDir,
        ORCH_LOG_FORMAT: "json",
        ORCH_CONFIG: configPath,
        PORT: String(port),
        ORCH_GRPC_PORT: String(await freePort()),
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    child.stdout!.on("data", (c: Buffer) => out.push(c.toString()));
    child.stderr!.on("data", (c: Buffer) => out.push(c.toString()));
    await waitFor(() => out.join("").includes("Orchestrator is running"), { timeoutMs: 60_000, what: "the runner's banner" });
    const started = runnerLines().find((l) => l.msg === "nats-server running");
    expect(started?.pid).toBeGreaterThan(0);
    // event_store_path is the JetStream store; synchronous = FULL fsyncs every write; the refused key is named, with its reason.
    const banner = out.join("");
    expect(banner).toContain(`JetStream store in ${storeDir} (ORCH_BACKEND=file)`);
    expect(banner).toContain(`Config ${configPath}; not applied: database.max_connections (the services' warnings say why)`);
    const conf = readFileSync(readFileSync(`/proc/${started!.pid}/cmdline`, "utf8").split("\0")[2]!, "utf8");
    expect(conf).toContain(`store_dir: ${JSON.stringify(storeDir)}`);
    expect(conf).toContain("sync_interval: always");
    await waitFor(() => out.join("").includes('"msg":"configuration key database.max_connections not applied: there is no database connection pool'), {
      what: "the refusal's reason",
    });
    await waitFor(async () => (await http("GET", `${api}/ready`)).status === 200, { timeoutMs: 30_000, what: "ready" });

    const job = (await http("POST", `${api}/api/orchestrator/jobs`, { json: { goal: "before the crash", limits: { maxSteps: 1 } } })).json().job_id as string;
    await waitFor(async () => (await http("GET", `${api}/api/orchestrator/jobs/${job}`)).json().status === "succeeded", { what: "the job" });

    // Probes every 50 ms while nats-server is down and until it is back (each on its own: one
    // that was already waiting on the dying connection does not hold the others back).
    const probe = async () => {
      const t0 = Date.now();
      const r = await http("GET", `${api}/ready`);
      return { status: r.status, body: r.json() as { status: string; checks: Record<string, string> }, ms: Date.now() - t0 };
    };
    const probes: ReturnType<typeof probe>[] = [];
    const prober = setInterval(() => probes.push(probe()), 50);
    process.kill(started!.pid!, "SIGKILL");
    let again: RunnerLine;
    try {
      again = await waitFor(() => runnerLines().find((l) => l.msg === "nats-server is running again"), { timeoutMs: 30_000, what: "nats-server back" });
    } finally {
      clearInterval(prober);
    }
    // The gateway knew at once that its connection was gone: no 5 s wait for a request to time out.
    const down = (await Promise.all(probes)).filter((p) => p.status === 503 && p.body.checks.nats === "disconnected");
    expect(down.length).toBeGreaterThan(0);
    expect(down[0]!.body.status).toBe("degraded");
    expect(Math.min(...down.map((p) => p.ms))).toBeLessThan(1_000);

    expect(runnerLines().some((l) => /^nats-server exited \(SIGKILL\); starting it again in \d+ ms$/.test(l.msg ?? ""))).toBe(true);
    expect(again.url).toBe(started!.url);
    expect(again.pid).not.toBe(started!.pid);
    const ready = await waitFor(
      async () => {
        const r = await http("GET", `${api}/ready`);
        return r.status === 200 ? r.json() : undefined;
      },
      { timeoutMs: 30_000, what: "/ready to answer 200 again" },
    );
    expect(ready).toEqual({ status: "ready", checks: { nats: "connected", topology: "present" } });

    // The same store: the job from before the crash is there, and new work runs.
    expect((await http("GET", `${api}/api/orchestrator/jobs/${job}`)).json()).toMatchObject({ job_id: job, status: "succeeded" });
    const after = (await http("POST", `${api}/api/orchestrator/jobs`, { json: { goal: "after the crash", limits: { maxSteps: 1 } } })).json().job_id as string;
    await waitFor(async () => (await http("GET", `${api}/api/orchestrator/jobs/${after}`)).json().status === "succeeded", {
      timeoutMs: 30_000,
      what: "a job after the restart",
    });
  });
});

import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sse, waitFor, type SseConnection } from "@orch/testing";
import { CpuMeter } from "./proc.js";
import { BenchStack } from "./stack.js";
import { percentile, round } from "./stats.js";

/**
 * The gateway over real sockets, on the whole system (stub agents, `ORCH_LOG_LEVEL=warn`):
 *
 * - HTTP: `--clients` keep-alive connections, each sending its next request as soon as the last one
 *   is answered, for `--seconds` per route: `GET /health` (the gateway alone), `GET /api/v1/runs/{id}`
 *   (a KV read and a described run), `GET /api/v1/runs` (a run-index query over NATS), and
 *   `POST /api/orchestrator/jobs` (a validated, durable command; the core then runs the job).
 *   Requests per second, latency p50/p99, gateway CPU.
 * - SSE fan-out: `--sse` clients on one run's event stream (`/api/v1/runs/{id}/events`) while it runs,
 *   each replayed from the start: the gateway's RSS before and with them connected, and how long after
 *   `run.finished` was stored every client had it.
 *
 *   node bench/dist/gateway.js [--clients 32] [--seconds 5] [--sse 500] [--out results/gateway.json]
 */

const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const CLIENTS = Number(arg("clients", "32"));
const SECONDS = Number(arg("seconds", "5"));
const SSE_CLIENTS = Number(arg("sse", "500"));
const OUT = resolve(BENCH_DIR, arg("out", "results/gateway.json"));
const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });

function send(base: string, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((res, rej) => {
    const req = request(
      `${base}${path}`,
      { method, agent, headers: body ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {} },
      (r) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () => res({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        r.on("error", rej);
      },
    );
    req.on("error", rej);
    if (body) req.write(body);
    req.end();
  });
}

const rssMb = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Math.round(Number(m[1]) / 1024) : null;
};

interface RouteResult {
  route: string;
  requests: number;
  perSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
  gatewayCpuPct: number | null;
}

async function load(stack: BenchStack, route: string, method: string, path: () => string, body?: () => string): Promise<RouteResult> {
  const gw = stack.services.get("gateway")!;
  const lat: number[] = [];
  let errors = 0;
  const cpu = new CpuMeter(() => ({ gateway: gw.pid }));
  const until = performance.now() + SECONDS * 1000;
  cpu.begin();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const r = await send(stack.baseUrl, method, path(), body?.()).catch(() => ({ status: 0, text: "" }));
        lat.push(performance.now() - t0);
        if (r.status >= 400 || r.status === 0) errors++;
      }
    }),
  );
  const busy = cpu.end();
  const r: RouteResult = {
    route,
    requests: lat.length,
    perSecond: Math.round(lat.length / SECONDS),
    p50Ms: round(percentile(lat, 50)),
    p99Ms: round(percentile(lat, 99)),
    errors,
    gatewayCpuPct: busy.gateway ?? null,
  };
  log(`${route}: ${r.perSecond} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, errors ${errors}, gateway CPU ${r.gatewayCpuPct}%`);
  return r;
}

async function main(): Promise<void> {
  log(`gateway: ${CLIENTS} keep-alive clients × ${SECONDS} s per route; SSE fan-out to ${SSE_CLIENTS} clients`);
  const stack = await BenchStack.start({ env: { ORCH_RATE_LIMIT_MAX: "1000000" }, serviceEnv: { "agent-hub": { ORCH_AGENT_CONCURRENCY: "64" } } });
  try {
    const job = JSON.stringify({ goal: "bench", steps: [{ type: "dev.log" }], limits: { maxSteps: 2 } });
    const first = JSON.parse((await send(stack.baseUrl, "POST", "/api/orchestrator/jobs", job)).text).job_id as string;
    await waitFor(async () => (await send(stack.baseUrl, "GET", `/api/v1/runs/${first}`)).status === 200, { timeoutMs: 30_000, what: "a first run" });

    const routes: RouteResult[] = [];
    routes.push(await load(stack, "GET /health", "GET", () => "/health"));
    routes.push(await load(stack, "GET /api/v1/runs/{id}", "GET", () => `/api/v1/runs/${first}`));
    routes.push(await load(stack, "GET /api/v1/runs?limit=20", "GET", () => "/api/v1/runs?limit=20"));
    routes.push(
      await load(
        stack,
        "POST /api/orchestrator/jobs",
        "POST",
        () => "/api/orchestrator/jobs",
        () => job,
      ),
    );
    stack.assertRunning();

    // SSE fan-out: a job of slow steps, watched by every client from its start.
    await new Promise((r) => setTimeout(r, 3_000)); // let the jobs of the POST round drain
    const gwPid = stack.services.get("gateway")!.pid!;
    const rssBefore = rssMb(gwPid);
    const slow = JSON.stringify({
      goal: "fan-out",
      steps: Array.from({ length: 5 }, () => ({ type: "dev.log", payload: { mock: { delayMs: 400 } } })),
      limits: { maxSteps: 5, maxWallMs: 600_000 },
    });
    const id = JSON.parse((await send(stack.baseUrl, "POST", "/api/orchestrator/jobs", slow)).text).job_id as string;
    await waitFor(async () => (await send(stack.baseUrl, "GET", `/api/v1/runs/${id}`)).status === 200, { timeoutMs: 30_000, what: "the fan-out run" });
    const conns: SseConnection[] = [];
    const t0 = performance.now();
    for (let i = 0; i < SSE_CLIENTS; i += 50) {
      conns.push(...(await Promise.all(Array.from({ length: Math.min(50, SSE_CLIENTS - i) }, () => sse(`${stack.baseUrl}/api/v1/runs/${id}/events`)))));
    }
    const connectMs = Math.round(performance.now() - t0);
    const rssWith = rssMb(gwPid);
    const finishedAt: number[] = [];
    await Promise.all(conns.map((c) => c.waitFor((f) => f.event === "run.finished", 120_000).then(() => finishedAt.push(performance.now()))));
    const rssPeak = rssMb(gwPid);
    const spreadMs = Math.round(Math.max(...finishedAt) - Math.min(...finishedAt));
    const allFrames = conns.every((c) => c.frames.length === conns[0]!.frames.length);
    for (const c of conns) c.close();
    log(
      `SSE: ${SSE_CLIENTS} clients connected in ${connectMs} ms; gateway RSS ${rssBefore} → ${rssWith} MB connected, ${rssPeak} MB at the end; run.finished reached every client within ${spreadMs} ms of the first; same frames everywhere: ${allFrames}`,
    );

    const result = {
      at: new Date().toISOString(),
      node: process.version,
      clients: CLIENTS,
      seconds: SECONDS,
      routes,
      sse: {
        clients: SSE_CLIENTS,
        connectMs,
        rssBeforeMb: rssBefore,
        rssConnectedMb: rssWith,
        rssPeakMb: rssPeak,
        finishedSpreadMs: spreadMs,
        sameFrames: allFrames,
        framesPerClient: conns[0]?.frames.length ?? 0,
      },
    };
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
    log(`wrote ${OUT}`);
  } finally {
    agent.destroy();
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

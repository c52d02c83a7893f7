import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "@orch/testing";
import { httpGet, JsonClient } from "../httpc.js";
import type { Outcome, Target } from "../loop.js";
import { ensurePeers, PEER_VERSIONS, SuiteSkipped } from "../peers.js";
import { ChildWorker, distPath } from "../proc.js";
import { RESTATE, type PeerInput, type PeerResult } from "./peer-shared.js";

export const RESTATE_DURABILITY = "its log fsynced (group commit) before a step's result is acknowledged";

/**
 * Restate (server from npm, TypeScript SDK): the same 5-step no-op workflow as a service handler
 * doing 5 journaled `ctx.run` steps. restate-server on loopback (ports by environment variables,
 * telemetry off, a fresh base dir per run), the SDK endpoint in a worker process of its own
 * (workers/restate-endpoint.ts), registered through the admin API; the driver invokes the handler
 * through the ingress, synchronously (the answer is the handler's result), one keep-alive
 * connection per workflow in flight.
 */
export class RestateSuite implements Target {
  #seq = 0;

  private constructor(
    private readonly server: RestateServer,
    private readonly endpoint: ChildWorker,
    private readonly client: JsonClient,
    private readonly steps: number,
  ) {}

  static async start(opts: { steps: number; inFlight: number; log: (msg: string) => void }): Promise<RestateSuite> {
    const dir = await ensurePeers(["@restatedev/restate-server", "@restatedev/restate-sdk"], opts.log);
    const platformPkg = `@restatedev/restate-server-${process.platform}-${process.arch}`;
    const bin = join(dir, "node_modules", platformPkg, "bin", "restate-server");
    if (!existsSync(bin)) throw new SuiteSkipped(`no restate-server binary for ${process.platform}-${process.arch} (${platformPkg} not installed)`);
    const server = await RestateServer.start(bin);
    let endpoint: ChildWorker | undefined;
    try {
      const port = await freePort();
      endpoint = new ChildWorker(distPath("./workers/restate-endpoint.js"), ["--peers", dir, "--port", String(port)]);
      await endpoint.start();
      const admin = new JsonClient(server.adminUrl, 1);
      const reg = await admin.post("/deployments", { uri: `http://127.0.0.1:${port}` }).finally(() => admin.close());
      if (reg.status >= 300) throw new Error(`registering the endpoint: ${reg.status} ${reg.text}`);
      const suite = new RestateSuite(server, endpoint, new JsonClient(server.ingressUrl, opts.inFlight + 8), opts.steps);
      // The ingress learns the new service shortly after the registration answers.
      await waitFor(
        async () => {
          const first = await suite.run();
          if (!first.ok) throw new Error(first.reason);
          return true;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: "a first Restate workflow" },
      );
      return suite;
    } catch (err) {
      await endpoint?.stop();
      await server.stop();
      throw err;
    }
  }

  static version(): string {
    return PEER_VERSIONS["@restatedev/restate-server"];
  }

  async run(): Promise<Outcome> {
    const input: PeerInput = { wf: `wf${++this.#seq}`, steps: this.steps };
    const res = await this.client.post(`/${RESTATE.service}/${RESTATE.handler}`, input);
    if (res.status !== 200) return { ok: false, reason: `ingress ${res.status} ${res.text.slice(0, 200)}` };
    const out = JSON.parse(res.text) as PeerResult;
    return out.steps === this.steps ? { ok: true } : { ok: false, reason: `ran ${out.steps} steps` };
  }

  pids(): Record<string, number | undefined> {
    return { "restate-server": this.server.pid, endpoint: this.endpoint.pid };
  }

  async stop(): Promise<void> {
    this.client.close();
    await this.endpoint.stop();
    await this.server.stop();
  }
}

/** restate-server as a child process in a fresh base dir, its three ports free ones on 127.0.0.1. */
class RestateServer {
  readonly #log: string[] = [];

  private constructor(
    private readonly child: ChildProcess,
    private readonly baseDir: string,
    private readonly exited: Promise<void>,
    readonly ingressUrl: string,
    readonly adminUrl: string,
  ) {}

  static async start(bin: string): Promise<RestateServer> {
    if (spawnSync(bin, ["--version"], { encoding: "utf8" }).status !== 0) throw new SuiteSkipped(`${bin} does not run here`);
    const [ingress, admin, node] = [await freePort(), await freePort(), await freePort()];
    const baseDir = mkdtempSync(join(tmpdir(), "orch-bench-restate-"));
    const child = spawn(bin, ["--base-dir", baseDir, "--no-logo"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        RESTATE_INGRESS__BIND_ADDRESS: `127.0.0.1:${ingress}`,
        RESTATE_ADMIN__BIND_ADDRESS: `127.0.0.1:${admin}`,
        RESTATE_BIND_ADDRESS: `127.0.0.1:${node}`,
        RESTATE_ADVERTISED_ADDRESS: `http://127.0.0.1:${node}/`,
        RESTATE_DISABLE_TELEMETRY: "true",
        RESTATE_LOG_FILTER: "warn",
        RESTATE_LOG_DISABLE_ANSI_CODES: "true",
      },
    });
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    const server = new RestateServer(child, baseDir, exited, `http://127.0.0.1:${ingress}`, `http://127.0.0.1:${admin}`);
    const keep = (c: Buffer) => {
      server.#log.push(c.toString());
      if (server.#log.length > 200) server.#log.shift();
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    try {
      await waitFor(
        async () => {
          if (child.exitCode !== null || child.signalCode !== null) throw new Error(`restate-server exited:\n${server.#log.join("")}`);
          return (await httpGet(`${server.adminUrl}/health`).catch(() => undefined))?.status === 200;
        },
        { timeoutMs: 60_000, intervalMs: 100, what: "restate-server's admin API" },
      );
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      const t = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(t);
    }
    rmSync(this.baseDir, { recursive: true, force: true });
  }
}

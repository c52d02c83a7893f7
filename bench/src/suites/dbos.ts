import { freePort } from "@orch/testing";
import { JsonClient } from "../httpc.js";
import type { Outcome, Target } from "../loop.js";
import { ensurePeers, PEER_VERSIONS } from "../peers.js";
import { PgCluster } from "../postgres.js";
import { ChildWorker, distPath, type ProcRef } from "../proc.js";
import { DBOS_BENCH, type PeerInput, type PeerResult } from "./peer-shared.js";

export const DBOS_DURABILITY = "each step's checkpoint its own committed transaction: synchronous_commit=on, fsync per step";

/**
 * DBOS Transact on Debian's PostgreSQL: the same 5-step no-op workflow, registered with
 * `DBOS.registerWorkflow`, each step a `DBOS.runStep`. A fresh cluster per run (postgres.ts), the DBOS
 * runtime in a worker process of its own (workers/dbos-worker.ts, default settings: a system
 * database pool of 10 connections); the driver starts each workflow over keep-alive HTTP and the
 * answer is its result. PostgreSQL's CPU counts all its processes (postmaster, backends, WAL writer…).
 */
export class DbosSuite implements Target {
  #seq = 0;

  private constructor(
    private readonly pg: PgCluster,
    private readonly worker: ChildWorker,
    private readonly client: JsonClient,
    private readonly steps: number,
  ) {}

  static async start(opts: { steps: number; inFlight: number; log: (msg: string) => void }): Promise<DbosSuite> {
    const dir = await ensurePeers(["@dbos-inc/dbos-sdk"], opts.log);
    const pg = await PgCluster.start(opts.log);
    let worker: ChildWorker | undefined;
    try {
      const port = await freePort();
      worker = new ChildWorker(distPath("./workers/dbos-worker.js"), ["--peers", dir, "--db", pg.url(DBOS_BENCH.database), "--port", String(port)]);
      await worker.start(60_000);
      const suite = new DbosSuite(pg, worker, new JsonClient(`http://127.0.0.1:${port}`, opts.inFlight + 8), opts.steps);
      const first = await suite.run();
      if (!first.ok) throw new Error(`a first DBOS workflow failed: ${first.reason}`);
      return suite;
    } catch (err) {
      await worker?.stop();
      await pg.stop();
      throw err;
    }
  }

  static version(): string {
    return PEER_VERSIONS["@dbos-inc/dbos-sdk"];
  }

  get postgresVersion(): string {
    return this.pg.version;
  }

  async run(): Promise<Outcome> {
    const input: PeerInput = { wf: `wf${++this.#seq}`, steps: this.steps };
    const res = await this.client.post("/run", input);
    if (res.status !== 200) return { ok: false, reason: `worker ${res.status} ${res.text.slice(0, 200)}` };
    const out = JSON.parse(res.text) as PeerResult;
    return out.steps === this.steps ? { ok: true } : { ok: false, reason: `ran ${out.steps} steps` };
  }

  pids(): Record<string, ProcRef | undefined> {
    const pm = this.pg.pid;
    return { worker: this.worker.pid, postgres: pm === undefined ? undefined : { tree: pm } };
  }

  async stop(): Promise<void> {
    this.client.close();
    await this.worker.stop();
    await this.pg.stop();
  }
}

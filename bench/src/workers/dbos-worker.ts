import { createServer } from "node:http";
import { argOf } from "../proc.js";
import { peerEntry } from "../peers.js";
import { DBOS_BENCH, type PeerInput, type PeerResult } from "../suites/peer-shared.js";

/**
 * The DBOS suite's worker, a process of its own: the DBOS runtime (its system database on the
 * suite's PostgreSQL) with one workflow registered with `DBOS.registerWorkflow`, each step a
 * `DBOS.runStep` no-op (a checkpoint, its own committed transaction). The driver starts a workflow
 * with `POST /run` (keep-alive HTTP/1.1); the answer is the workflow's result
 * (`DBOS.startWorkflow(fn)(input)`, then `handle.getResult()`). The SDK comes from the peers' folder.
 *
 *   node dist/workers/dbos-worker.js --peers <dir> --db <postgresql://…> --port <port>
 */

/** The few SDK surfaces used here (the package is not a project dependency, so it has no types here). */
interface DbosStatic {
  setConfig(config: { name: string; systemDatabaseUrl: string; logLevel?: string }): void;
  launch(): Promise<void>;
  shutdown(): Promise<void>;
  registerWorkflow<A extends unknown[], R>(fn: (...args: A) => Promise<R>, config?: { name?: string }): (...args: A) => Promise<R>;
  runStep<R>(fn: () => Promise<R>, config?: { name?: string }): Promise<R>;
  startWorkflow<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<{ getResult(): Promise<R> }>;
}

const argv = process.argv.slice(2);
const dir = argOf(argv, "peers");
const db = argOf(argv, "db");
const port = Number(argOf(argv, "port"));
if (!dir || !db || !Number.isInteger(port)) throw new Error("usage: dbos-worker --peers <dir> --db <url> --port <port>");

const mod = (await import(peerEntry(dir, "@dbos-inc/dbos-sdk"))) as { DBOS?: DbosStatic; default?: { DBOS?: DbosStatic } };
const DBOS = mod.DBOS ?? mod.default?.DBOS;
if (!DBOS) throw new Error("@dbos-inc/dbos-sdk: no DBOS export");

const workflow = DBOS.registerWorkflow(
  async (input: PeerInput): Promise<PeerResult> => {
    const results: { i: number; at: number }[] = [];
    for (let i = 1; i <= input.steps; i++) results.push(await DBOS.runStep(async () => ({ i, at: Date.now() }), { name: `step-${i}` }));
    return { wf: input.wf, steps: results.length };
  },
  { name: DBOS_BENCH.workflow },
);

DBOS.setConfig({ name: DBOS_BENCH.app, systemDatabaseUrl: db, logLevel: "warn" });
await DBOS.launch();

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const input = JSON.parse(Buffer.concat(chunks).toString()) as PeerInput;
    DBOS.startWorkflow(workflow)(input)
      .then((handle) => handle.getResult())
      .then(
        (result) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify(result));
        },
        (err: unknown) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(String((err as Error).message ?? err));
        },
      );
  });
});
server.keepAliveTimeout = 60_000;
await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));

const stop = async () => {
  server.close();
  await DBOS.shutdown().catch(() => undefined);
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
console.log("ready");

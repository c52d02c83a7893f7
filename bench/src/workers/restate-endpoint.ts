import { argOf } from "../proc.js";
import { peerEntry } from "../peers.js";
import { RESTATE, type PeerInput, type PeerResult } from "../suites/peer-shared.js";

/**
 * The Restate suite's SDK endpoint, a process of its own (as every reference's worker is): one
 * service whose handler runs the workflow's steps as journaled `ctx.run` no-ops, served over HTTP/2
 * for the restate-server to call. The SDK comes from the peers' folder (see peers.ts).
 *
 *   node dist/workers/restate-endpoint.js --peers <dir> --port <port>
 */

// SDK 1.17 calls Promise.withResolvers (ES2024), which Node 20 lacks: defined before the SDK loads.
const P = Promise as unknown as { withResolvers?: () => unknown };
P.withResolvers ??= function withResolvers<T>() {
  let resolve!: (v: T | PromiseLike<T>) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};
// The SDK logs every invocation at info; the other references log nothing per workflow.
process.env.RESTATE_LOGGING ??= "WARN";

/** The few SDK surfaces used here (the package is not a project dependency, so it has no types here). */
interface RestateContext {
  run<T>(name: string, action: () => Promise<T>): PromiseLike<T>;
}
interface RestateSdk {
  service(def: { name: string; handlers: Record<string, (ctx: RestateContext, input: PeerInput) => Promise<PeerResult>> }): unknown;
  endpoint(): { bind(service: unknown): { listen(port: number): Promise<number> } };
}

const argv = process.argv.slice(2);
const dir = argOf(argv, "peers");
const port = Number(argOf(argv, "port"));
if (!dir || !Number.isInteger(port)) throw new Error("usage: restate-endpoint --peers <dir> --port <port>");

const restate = (await import(peerEntry(dir, "@restatedev/restate-sdk"))) as RestateSdk;

const service = restate.service({
  name: RESTATE.service,
  handlers: {
    [RESTATE.handler]: async (ctx, input) => {
      const results: { i: number; at: number }[] = [];
      for (let i = 1; i <= input.steps; i++) results.push(await ctx.run(`step-${i}`, async () => ({ i, at: Date.now() })));
      return { wf: input.wf, steps: results.length };
    },
  },
});

await restate.endpoint().bind(service).listen(port);
const stop = () => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
console.log("ready");

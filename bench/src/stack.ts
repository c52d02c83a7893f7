import { freePort, SERVICE_NAMES, ServiceProcess, startNats, waitFor, type NatsServer, type ServiceName } from "@orch/testing";

/**
 * The five services as processes on a fresh nats-server, like @orch/testing's `Stack`, but able to run
 * at `ORCH_LOG_LEVEL=warn`. `Stack.start` waits for each service's `ready` line, which is logged at
 * info and so never appears at warn; at info, though, the agent hub and the core log several lines
 * per job, which the benchmark would then measure (and the parent would parse). So each process is
 * started with `ServiceProcess` (as `Stack` does) without waiting for the line, and readiness is
 * probed from outside: the gateway's `/ready`, then (by the caller) a first job over gRPC.
 */
export class BenchStack {
  readonly services = new Map<ServiceName, ServiceProcess>();

  private constructor(
    readonly nats: NatsServer,
    private readonly ownNats: boolean,
    readonly httpPort: number,
    readonly grpcPort: number,
  ) {}

  static async start(
    opts: { env?: Record<string, string>; serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>; nats?: NatsServer } = {},
  ): Promise<BenchStack> {
    const nats = opts.nats ?? (await startNats());
    const stack = new BenchStack(nats, opts.nats === undefined, await freePort(), await freePort());
    const base: Record<string, string> = {
      ORCH_NATS_URL: nats.url,
      PORT: String(stack.httpPort),
      HOST: "127.0.0.1",
      ORCH_GRPC_PORT: String(stack.grpcPort),
      ORCH_LOG_LEVEL: "warn",
      ORCH_AGENT_EXECUTOR: "stub",
      ORCH_CONFIG: "none",
      ...opts.env,
    };
    for (const name of SERVICE_NAMES) stack.services.set(name, new ServiceProcess(name, { ...base, ...opts.serviceEnv?.[name] }));
    try {
      for (const s of stack.services.values()) {
        // Spawns the process; the wait for `ready` times out at once (see above) unless it exited.
        await s.start(1).catch((err: unknown) => {
          if (!s.running) throw err;
        });
      }
      await waitFor(
        async () => {
          for (const s of stack.services.values()) if (!s.running) throw new Error(`${s.name} exited:\n${s.raw.slice(-20).join("\n")}`);
          const res = await fetch(`${stack.baseUrl}/ready`).catch(() => undefined);
          return res?.status === 200;
        },
        { timeoutMs: 30_000, intervalMs: 100, what: "the gateway's /ready" },
      );
    } catch (err) {
      await stack.stop();
      throw err;
    }
    return stack;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** Fails if a service has died (a benchmark of four services would be meaningless). */
  assertRunning(): void {
    for (const s of this.services.values()) if (!s.running) throw new Error(`${s.name} exited:\n${s.raw.slice(-20).join("\n")}`);
  }

  /** SIGTERM to every service (a clean exit, which is when `--cpu-prof` writes), then the server. */
  async stop(): Promise<void> {
    await Promise.all([...this.services.values()].map((s) => s.stop()));
    if (this.ownNats) await this.nats.stop();
  }
}

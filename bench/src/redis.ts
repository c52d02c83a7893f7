import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@orch/testing";

/**
 * A throw-away redis-server for the BullMQ references: a free port on 127.0.0.1, no RDB snapshots
 * and no AOF (`--save '' --appendonly no`: BullMQ's usual benchmark setting, and the kindest one to
 * it, since nothing is written to disk), in a temporary directory removed on stop.
 */
export class RedisServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
    private readonly exited: Promise<void>,
  ) {}

  static version(bin = "redis-server"): string | null {
    const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
    return /v=(\S+)/.exec(r.stdout ?? "")?.[1] ?? null;
  }

  static async start(bin = "redis-server"): Promise<RedisServer> {
    if (RedisServer.version(bin) === null) {
      throw new Error(`${bin} not found: install it (apt-get install -y redis-server) or skip the bullmq suite`);
    }
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "orch-bench-redis-"));
    const child = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    const log: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`redis-server not ready:\n${log.join("")}`)), 10_000);
      child.stdout?.on("data", (c: Buffer) => {
        log.push(c.toString());
        if (c.toString().includes("Ready to accept connections")) {
          clearTimeout(t);
          resolve();
        }
      });
      child.stderr?.on("data", (c: Buffer) => log.push(c.toString()));
      child.once("exit", (code) => {
        clearTimeout(t);
        reject(new Error(`redis-server exited (${code}):\n${log.join("")}`));
      });
    });
    return new RedisServer(child, port, dir, exited);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@orch/testing";
import { SuiteSkipped } from "./peers.js";

/**
 * A throw-away PostgreSQL cluster for the DBOS suite, with Debian's server binaries
 * (`/usr/lib/postgresql/<version>/bin`, 15 preferred): initdb in a temporary directory, trust
 * authentication, a free port on 127.0.0.1 and its socket in the same directory; settings left at
 * their defaults (`fsync=on`, `synchronous_commit=on`). PostgreSQL refuses to run as root: as root
 * every command runs as the `postgres` user (`runuser`), which the Debian package creates.
 */
export class PgCluster {
  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    private readonly asUser: string | null,
    readonly port: number,
    readonly version: string,
  ) {}

  /** `/usr/lib/postgresql/<v>/bin` holding initdb, 15 first, else the newest. */
  static findBin(): string | null {
    const root = "/usr/lib/postgresql";
    const preferred = join(root, "15", "bin");
    if (existsSync(join(preferred, "initdb"))) return preferred;
    let versions: string[] = [];
    try {
      versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "initdb")));
    } catch {
      return null;
    }
    versions.sort((a, b) => Number(b) - Number(a));
    return versions[0] ? join(root, versions[0], "bin") : null;
  }

  /** Finds the server binaries, installing Debian's `postgresql` package with apt-get when they are missing (as root). */
  static ensureInstalled(log: (msg: string) => void): string {
    const found = PgCluster.findBin();
    if (found) return found;
    const isRoot = process.getuid?.() === 0;
    if (!isRoot || spawnSync("apt-get", ["--version"]).status !== 0) {
      throw new SuiteSkipped("PostgreSQL not found (/usr/lib/postgresql/15/bin/initdb): install Debian's postgresql package");
    }
    log("PostgreSQL not found: installing Debian's postgresql package with apt-get (once)");
    const r = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "postgresql"], {
      encoding: "utf8",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      timeout: 10 * 60_000,
    });
    const bin = PgCluster.findBin();
    if (!bin) {
      const last = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-1)[0] ?? "";
      throw new SuiteSkipped(`could not install postgresql with apt-get (${r.status ?? r.signal}${last ? `: ${last}` : ""})`);
    }
    return bin;
  }

  static async start(log: (msg: string) => void): Promise<PgCluster> {
    const bin = PgCluster.ensureInstalled(log);
    const isRoot = process.getuid?.() === 0;
    const asUser = isRoot ? "postgres" : null;
    const dir = mkdtempSync(join(tmpdir(), "orch-bench-pg-"));
    if (asUser) {
      const id = (flag: string) => Number(spawnSync("id", [flag, asUser], { encoding: "utf8" }).stdout.trim());
      const uid = id("-u");
      const gid = id("-g");
      if (!Number.isInteger(uid) || uid <= 0) throw new SuiteSkipped("PostgreSQL refuses to run as root and there is no postgres user");
      chownSync(dir, uid, gid);
    }
    const version = /(\d+(?:\.\d+)?)/.exec(spawnSync(join(bin, "postgres"), ["--version"], { encoding: "utf8" }).stdout ?? "")?.[1] ?? "?";
    const port = await freePort();
    const cluster = new PgCluster(bin, dir, asUser, port, version);
    try {
      cluster.#run("initdb", ["-D", cluster.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
      cluster.#run("pg_ctl", [
        "-D",
        cluster.dataDir,
        "-o",
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`,
        "-l",
        join(dir, "postgres.log"),
        "-w",
        "-t",
        "60",
        "start",
      ]);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  get dataDir(): string {
    return join(this.dir, "data");
  }

  url(database: string): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** The postmaster (every other PostgreSQL process is its child). */
  get pid(): number | undefined {
    try {
      const n = Number(readFileSync(join(this.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
      return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
      return undefined;
    }
  }

  #run(tool: string, args: string[]): SpawnSyncReturns<string> {
    const cmd = join(this.bin, tool);
    const r = this.asUser
      ? spawnSync("runuser", ["-u", this.asUser, "--", cmd, ...args], { encoding: "utf8", cwd: this.dir, timeout: 120_000 })
      : spawnSync(cmd, args, { encoding: "utf8", cwd: this.dir, timeout: 120_000 });
    if (r.status !== 0) {
      let tail = "";
      try {
        tail = readFileSync(join(this.dir, "postgres.log"), "utf8").slice(-2000);
      } catch {
        // no log yet
      }
      throw new Error(`${tool} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}${tail ? `\n${tail}` : ""}`);
    }
    return r;
  }

  async stop(): Promise<void> {
    if (this.pid !== undefined) {
      try {
        this.#run("pg_ctl", ["-D", this.dataDir, "-m", "fast", "-w", "stop"]);
      } catch {
        // already stopped
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

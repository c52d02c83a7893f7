import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/**
 * The peers' npm packages (Restate, DBOS) are not dependencies of the project: every `npm ci` would
 * otherwise download a ~100 MB Restate server binary and the DBOS SDK tree that only this benchmark
 * uses. They are installed on demand, the first time their suite runs, into
 * `$ORCH_TOOLS_DIR/bench-peers` (default `<repo>/.tools/bench-peers`), at the exact versions below,
 * and the worker processes import them from there by absolute path.
 */

/** The one place the peers' versions are pinned. */
export const PEER_VERSIONS = {
  "@restatedev/restate-server": "1.7.12",
  "@restatedev/restate-sdk": "1.17.2",
  "@dbos-inc/dbos-sdk": "5.3.0",
} as const;
export type PeerPackage = keyof typeof PEER_VERSIONS;

/** A suite that cannot run here (its packages cannot be installed, a server is missing): skipped, not a crash. */
export class SuiteSkipped extends Error {
  override readonly name = "SuiteSkipped";
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export function peersDir(): string {
  return join(process.env.ORCH_TOOLS_DIR ?? join(REPO_ROOT, ".tools"), "bench-peers");
}

/** The installed version of a package under `dir`, or null. */
function installedVersion(dir: string, name: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(dir, "node_modules", name, "package.json"), "utf8")) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

/**
 * Makes sure `names` are installed in the peers' folder at their pinned versions (`npm install
 * --prefix`, install scripts off: none of them needs one). Throws SuiteSkipped when npm cannot
 * install them (offline, no npm).
 */
export async function ensurePeers(names: readonly PeerPackage[], log: (msg: string) => void): Promise<string> {
  const dir = peersDir();
  const missing = names.filter((n) => installedVersion(dir, n) !== PEER_VERSIONS[n]);
  if (missing.length === 0) return dir;
  const specs = missing.map((n) => `${n}@${PEER_VERSIONS[n]}`);
  log(`installing ${specs.join(" ")} into ${dir} (once; benchmark peers are not project dependencies)`);
  mkdirSync(dir, { recursive: true });
  const npm = process.env.npm_execpath && existsSync(process.env.npm_execpath) ? [process.execPath, process.env.npm_execpath] : ["npm"];
  // Few fetch retries: offline, the suite is skipped within seconds rather than after a minute of backoff.
  const retries = ["--fetch-retries=1", "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=5000"];
  const args = [
    ...npm.slice(1),
    "install",
    "--prefix",
    dir,
    "--save-exact",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
    ...retries,
    ...specs,
  ];
  const out: string[] = [];
  const code = await new Promise<number | string>((res) => {
    const child = spawn(npm[0]!, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_update_notifier: "false" } });
    const t = setTimeout(() => child.kill("SIGKILL"), 10 * 60_000);
    const keep = (c: Buffer) => {
      out.push(c.toString());
      if (out.length > 50) out.shift();
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.once("error", (err) => {
      clearTimeout(t);
      res(err.message);
    });
    child.once("exit", (c, signal) => {
      clearTimeout(t);
      res(c ?? signal ?? "?");
    });
  });
  const still = missing.filter((n) => installedVersion(dir, n) !== PEER_VERSIONS[n]);
  if (code !== 0 || still.length > 0) {
    // npm's own diagnosis: its error code and the line that gives the reason (not the stack, not the log's path).
    const lines = out
      .join("")
      .split("\n")
      .map((l) => l.replace(/^npm (error|ERR!)\s*/, "").trim())
      .filter(Boolean);
    const why = [lines.find((l) => l.startsWith("code ")), lines.find((l) => /reason:|404|ENOTFOUND|EAI_AGAIN/.test(l)) ?? lines[0]]
      .filter((l, i, a): l is string => l !== undefined && a.indexOf(l) === i)
      .join(": ");
    throw new SuiteSkipped(`could not install ${specs.join(" ")} (npm exited ${code}${why ? `: ${why}` : ""})`);
  }
  return dir;
}

/**
 * The `import()`-able URL of a package installed in `dir`: its `exports["."]` (the `import`, then
 * `default` condition), else `module`, else `main`. Enough for the peers' packages, which is all it is for.
 */
export function peerEntry(dir: string, name: string): string {
  const pkgDir = join(dir, "node_modules", name);
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as {
    exports?: string | Record<string, unknown>;
    module?: string;
    main?: string;
  };
  const pick = (e: unknown): string | undefined => {
    if (typeof e === "string") return e;
    if (e && typeof e === "object") {
      const o = e as Record<string, unknown>;
      for (const k of ["import", "node", "default"]) {
        const v = pick(o[k]);
        if (v) return v;
      }
    }
    return undefined;
  };
  const exp = pkg.exports;
  const dot =
    typeof exp === "string" ? exp : exp && typeof exp === "object" ? pick(Object.keys(exp).some((k) => k.startsWith(".")) ? exp["."] : exp) : undefined;
  const rel = dot ?? pkg.module ?? pkg.main ?? "index.js";
  return pathToFileURL(join(pkgDir, rel)).href;
}

// The coding-agent CLIs the `harness` test tier drives for real, pinned here and only here, and
// installed on demand from npm into the project's tools folder (.tools/harnesses/<name>-<version>/),
// outside the workspace's node_modules: they are big (each ships a native binary of 200-400 MB
// inside a platform package), so nothing else installs them, and a folder that holds a working
// binary of the pinned version is reused as it is. Plain Node, no dependencies.
//
// Install scripts: Claude Code and OpenCode put their native binary in place in a postinstall
// script (until then their `bin` is a stub that prints an error). npm 11 still runs dependencies'
// install scripts but warns about each one not listed in the project's `allowScripts`, and npm 12
// will skip them; so each folder's package.json allows exactly its pinned package's scripts. When
// scripts were skipped all the same (`ignore-scripts` in a user's npm config), the package's
// postinstall is run here, once, after the install.
//
//   node scripts/lib/harnesses.mjs            install all three (or reuse them), print where they are
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync, lstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const HARNESS_DIR = join(process.env.ORCH_TOOLS_DIR ?? join(ROOT, ".tools"), "harnesses");

/** name → the npm package, its pinned version, and the binary it puts in node_modules/.bin. */
export const HARNESSES = Object.freeze({
  codex: { pkg: "@openai/codex", version: "0.169.0", bin: "codex" },
  claude: { pkg: "@anthropic-ai/claude-code", version: "2.1.330", bin: "claude" },
  opencode: { pkg: "opencode-ai", version: "1.18.33", bin: "opencode" },
});

const NETWORK_ERRORS = /\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|CERT_|UNABLE_TO_GET_ISSUER|SELF_SIGNED)\w*/;

export class HarnessInstallError extends Error {
  name = "HarnessInstallError";
}

function log(msg) {
  process.stderr.write(`[harnesses] ${msg}\n`);
}

function spec(name) {
  const s = HARNESSES[name];
  if (!s) throw new HarnessInstallError(`unknown harness '${name}': one of ${Object.keys(HARNESSES).join(", ")}`);
  return s;
}

export function harnessDir(name) {
  const s = spec(name);
  return join(HARNESS_DIR, `${name}-${s.version}`);
}

/** Where the binary is once installed. */
export function harnessBin(name) {
  return join(harnessDir(name), "node_modules", ".bin", spec(name).bin);
}

/** Whether `bin --version` runs and names the pinned version. */
function works(bin, version) {
  if (!existsSync(bin)) return false;
  const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 30_000, env: { PATH: process.env.PATH ?? "", HOME: tmpdir() } });
  return r.status === 0 && `${r.stdout}${r.stderr}`.includes(version);
}

/** Bytes on disk under `dir`, hard links counted once (Claude Code links its binary into place). */
function sizeOf(dir) {
  let total = 0;
  const seen = new Set();
  const walk = (d) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (!seen.has(`${st.dev}:${st.ino}`)) {
        seen.add(`${st.dev}:${st.ino}`);
        total += st.size;
      }
    }
  };
  walk(dir);
  return total;
}

/** Runs the package's own postinstall (what npm would have run), for installs whose scripts were skipped. */
function runPostinstall(dir, s) {
  const pkgDir = join(dir, "node_modules", ...s.pkg.split("/"));
  const script = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).scripts?.postinstall;
  if (!script) return;
  log(`running ${s.pkg}'s postinstall (npm skipped it)`);
  spawnSync("sh", ["-c", script], { cwd: pkgDir, stdio: ["ignore", "ignore", "inherit"], timeout: 120_000 });
}

/**
 * Returns `{ name, version, bin, installed }` for the pinned CLI, installing it when its folder
 * does not hold a working binary. Throws HarnessInstallError with one line when it cannot.
 */
export function ensureHarness(name, { quiet = false } = {}) {
  const s = spec(name);
  const dir = harnessDir(name);
  const bin = harnessBin(name);
  if (works(bin, s.version)) return { name, version: s.version, bin, installed: false };

  // Installed beside the final folder and moved into place when it works: an interrupted install
  // never leaves a folder that looks ready.
  const work = `${dir}.partial-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, "package.json"), `${JSON.stringify({ private: true, allowScripts: { [`${s.pkg}@${s.version}`]: true } }, null, 2)}\n`);
  if (!quiet) log(`installing ${s.pkg}@${s.version} into ${dir} ...`);
  const started = Date.now();
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const r = spawnSync(
    npm,
    [
      "install",
      "--prefix",
      work,
      "--no-audit",
      "--no-fund",
      "--save-exact",
      // Claude Code declares node >= 22 but its binary is native: it runs under any Node.
      "--engine-strict=false",
      "--loglevel=error",
      // An unreachable registry is said within seconds, not after npm's minute of retries.
      "--fetch-retries=2",
      "--fetch-retry-mintimeout=1000",
      "--fetch-retry-maxtimeout=5000",
      `${s.pkg}@${s.version}`,
    ],
    { encoding: "utf8", timeout: 600_000, env: process.env },
  );
  if (r.status !== 0) {
    rmSync(work, { recursive: true, force: true });
    const out = `${r.stderr ?? ""}${r.stdout ?? ""}${r.error ? String(r.error) : ""}`;
    const net = NETWORK_ERRORS.exec(out);
    const registry = spawnSync(npm, ["config", "get", "registry"], { encoding: "utf8" }).stdout?.trim() || "the npm registry";
    const why = net ? `${registry} is unreachable (${net[0]})` : (out.trim().split("\n").filter(Boolean).pop() ?? `npm exited with ${r.status ?? r.signal}`);
    throw new HarnessInstallError(`cannot install ${s.pkg}@${s.version}: ${why}`);
  }
  const workBin = join(work, "node_modules", ".bin", s.bin);
  if (!works(workBin, s.version)) runPostinstall(work, s);
  if (!works(workBin, s.version)) {
    rmSync(work, { recursive: true, force: true });
    throw new HarnessInstallError(
      `installed ${s.pkg}@${s.version}, but \`${s.bin} --version\` does not run (no native binary for ${process.platform}-${process.arch}?)`,
    );
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  if (!quiet) log(`installed ${s.pkg}@${s.version} in ${((Date.now() - started) / 1000).toFixed(1)} s (${Math.round(sizeOf(dir) / 1e6)} MB)`);
  return { name, version: s.version, bin, installed: true };
}

/** Every pinned CLI, installed or reused. */
export function ensureHarnesses(opts = {}) {
  return Object.keys(HARNESSES).map((name) => ensureHarness(name, opts));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    for (const h of ensureHarnesses()) process.stdout.write(`${h.name} ${h.version} ${h.bin}\n`);
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}

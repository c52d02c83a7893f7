// Finds or installs the nats-server binary the embedded default runs. Plain Node, no dependencies:
// it runs before `npm install` on a fresh machine.
//
// Order: $ORCH_NATS_SERVER_BIN, the project's tools folder, the PATH. A binary older than 2.10 is
// used only when a newer one cannot be had. Installing tries, in turn:
//   1. Debian trixie's nats-server package (2.10.x), fetched with `apt-get download` through a
//      temporary source list and unpacked with `dpkg -x` into .tools/ (the system is not changed);
//   2. `apt-get install nats-server` (Debian bookworm's 2.9.10), as root or through `sudo -n`;
// and otherwise stops with one line saying how to get one.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, copyFileSync, chmodSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, delimiter } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const TOOLS_BIN = join(process.env.ORCH_TOOLS_DIR ?? join(ROOT, ".tools"), "nats-server", "bin", "nats-server");
const MIRROR = process.env.ORCH_DEBIAN_MIRROR ?? "http://deb.debian.org/debian";

export function versionOf(bin) {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) return null;
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(`${r.stdout}${r.stderr}`);
  return m ? { text: `${m[1]}.${m[2]}.${m[3]}`, major: +m[1], minor: +m[2], patch: +m[3] } : null;
}

const modern = (v) => v !== null && (v.major > 2 || (v.major === 2 && v.minor >= 10));

function onPath(name) {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const p = join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  for (const dir of ["/usr/sbin", "/usr/local/sbin", "/sbin"]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

/** Every usable binary we can see, best first. */
export function candidates() {
  const seen = [];
  for (const p of [process.env.ORCH_NATS_SERVER_BIN, TOOLS_BIN, onPath("nats-server")]) {
    if (!p || !existsSync(p) || seen.some((s) => s.path === p)) continue;
    const v = versionOf(p);
    if (v) seen.push({ path: p, version: v });
  }
  if (process.env.ORCH_NATS_SERVER_BIN && seen[0]?.path === process.env.ORCH_NATS_SERVER_BIN) return seen;
  return seen.sort((a, b) => Number(modern(b.version)) - Number(modern(a.version)));
}

function have(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function log(msg) {
  process.stderr.write(`[nats-server] ${msg}\n`);
}

/**
 * Fetches Debian's nats-server package with `apt-get download` and unpacks it with `dpkg -x` into
 * `dest`, changing nothing on the system. `suite` (e.g. "trixie") goes through a temporary source
 * list; without it the system's own sources are used. Returns the binary, or null.
 */
export function fetchDebianNats({ suite, dest, quiet = false } = {}) {
  if (!have("apt-get") || !have("dpkg")) return null;
  const work = mkdtempSync(join(tmpdir(), "orch-nats-"));
  try {
    let aptOpts = ["-q", "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"];
    if (suite) {
      const list = join(work, `${suite}.list`);
      writeFileSync(list, `deb ${MIRROR} ${suite} main\n`);
      for (const d of ["lists/partial", "cache/archives/partial"]) mkdirSync(join(work, d), { recursive: true });
      aptOpts = [
        ...aptOpts,
        "-o",
        `Dir::Etc::SourceList=${list}`,
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        `Dir::State::Lists=${join(work, "lists")}`,
        "-o",
        `Dir::Cache=${join(work, "cache")}`,
      ];
      if (!quiet) log(`fetching Debian ${suite}'s nats-server package from ${MIRROR} ...`);
      execFileSync("apt-get", [...aptOpts, "update"], { cwd: work, stdio: ["ignore", "ignore", "pipe"], timeout: 180_000 });
    }
    execFileSync("apt-get", [...aptOpts, "download", "nats-server"], { cwd: work, stdio: ["ignore", "ignore", "pipe"], timeout: 180_000 });
    const deb = readdirSync(work).find((f) => f.startsWith("nats-server_") && f.endsWith(".deb"));
    if (!deb) return null;
    const x = join(work, "x");
    execFileSync("dpkg", ["-x", join(work, deb), x], { stdio: "ignore" });
    const bin = [join(x, "usr", "sbin", "nats-server"), join(x, "usr", "bin", "nats-server")].find((p) => existsSync(p));
    if (!bin || !versionOf(bin)) return null;
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(bin, dest);
    chmodSync(dest, 0o755);
    return dest;
  } catch (err) {
    const detail = err?.stderr?.toString().trim().split("\n").pop() ?? err?.message ?? String(err);
    if (!quiet) log(`Debian ${suite ?? "default"} nats-server package not available (${detail})`);
    return null;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const installFromTrixie = () => fetchDebianNats({ suite: "trixie", dest: TOOLS_BIN });

/** bookworm's nats-server (2.9.10) through apt, when we may install system packages. */
function installFromApt() {
  if (!have("apt-get")) return null;
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  const prefix = root ? [] : have("sudo") ? ["sudo", "-n"] : null;
  if (prefix === null) return null;
  log("falling back to `apt-get install nats-server` (Debian bookworm: 2.9.10) ...");
  const run = (args) =>
    spawnSync(prefix[0] ?? args[0], prefix.length ? [...prefix.slice(1), ...args] : args.slice(1), {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      timeout: 600_000,
    }).status === 0;
  if (!run(["apt-get", "install", "-y", "-q", "nats-server"])) {
    if (!run(["apt-get", "update", "-q"]) || !run(["apt-get", "install", "-y", "-q", "nats-server"])) return null;
  }
  return onPath("nats-server");
}

export const HOW_TO =
  "nats-server not found: install nats-server >= 2.10 (Debian/Ubuntu: apt-get install nats-server; macOS: brew install nats-server; " +
  "or a release from https://github.com/nats-io/nats-server/releases) and put it on the PATH, set ORCH_NATS_SERVER_BIN, " +
  "or point ORCH_NATS_URL at a running NATS server with JetStream";

/**
 * Returns `{ path, version }` of the binary to use, installing one if needed, or null after printing
 * the one-line instruction.
 */
export function ensureNatsServer({ quiet = false } = {}) {
  const found = candidates();
  const best = found[0];
  if (best && modern(best.version)) return best;
  if (process.env.ORCH_NATS_SERVER_BIN && best) return best;
  const trixie = installFromTrixie();
  if (trixie) {
    const v = versionOf(trixie);
    if (!quiet) log(`installed nats-server ${v.text} into ${dirname(trixie)}`);
    return { path: trixie, version: v };
  }
  if (best) {
    log(`using nats-server ${best.version.text} at ${best.path}; production should run >= 2.10.23`);
    return best;
  }
  const apt = installFromApt();
  if (apt) {
    const v = versionOf(apt);
    log(`installed nats-server ${v?.text} with apt; production should run >= 2.10.23`);
    return { path: apt, version: v };
  }
  process.stderr.write(`${HOW_TO}\n`);
  return null;
}

// What `npm start` and `npm test` do before anything else, on a fresh machine or an old checkout:
// check Node, install dependencies when they are missing or stale, make sure a nats-server is at
// hand (unless ORCH_NATS_URL names one), and build. Plain Node, no dependencies.
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { ensureNatsServer, ROOT } from "./nats.mjs";

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit", env: process.env });
  if (r.status !== 0) {
    process.stderr.write(`${what} failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status ?? 1);
  }
}

export function checkNode() {
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 19) || major === 21 || (major === 22 && minor < 12)) {
    process.stderr.write(`Node ${process.versions.node} is not supported: Orchestrator needs Node 20.19+, 22.12+ or 24\n`);
    process.exit(1);
  }
}

/** `npm ci` when node_modules is missing or older than package-lock.json. */
export function installDependencies() {
  const marker = join(ROOT, "node_modules", ".package-lock.json");
  const lock = join(ROOT, "package-lock.json");
  const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
  if (!stale) return;
  process.stderr.write("installing dependencies (npm ci) ...\n");
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  run(npm, existsSync(lock) ? ["ci", "--no-audit", "--no-fund"] : ["install", "--no-audit", "--no-fund"], "npm install");
}

/** Sets ORCH_NATS_SERVER_BIN for the processes we start, installing a binary if need be. */
export function ensureNats() {
  if (process.env.ORCH_NATS_URL) return;
  const found = ensureNatsServer();
  if (!found) process.exit(1);
  process.env.ORCH_NATS_SERVER_BIN = found.path;
}

export function build() {
  run(process.execPath, [join(ROOT, "node_modules", "turbo", "bin", "turbo"), "run", "build", "--output-logs=errors-only", "--log-prefix=none"], "build");
}

export function bootstrap() {
  checkNode();
  installDependencies();
  ensureNats();
  build();
}

// The programs from the system's packages that some test tiers drive for real: Debian's Chromium
// (the `browser` tier, through playwright-core) and tmux (the terminal UI's tests, a real
// pseudo-terminal). Each is looked for on PATH (or where its variable says) and, when missing,
// installed with apt-get (as root, or through `sudo -n`). Plain Node, no dependencies.
//
//   node scripts/lib/system-tools.mjs          make sure both are present, print where they are
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

/** name → the Debian package that ships it, and the variable that may point at another binary. */
export const SYSTEM_TOOLS = Object.freeze({
  chromium: { pkg: "chromium", env: "ORCH_CHROMIUM_BIN" },
  tmux: { pkg: "tmux", env: "ORCH_TMUX_BIN" },
});

export class SystemToolError extends Error {
  name = "SystemToolError";
}

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The binary's path, from its variable or PATH, or undefined. */
export function findSystemTool(name) {
  const tool = SYSTEM_TOOLS[name];
  const explicit = process.env[tool.env];
  if (explicit) return executable(explicit) ? explicit : undefined;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && executable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

function log(msg) {
  process.stderr.write(`[system-tools] ${msg}\n`);
}

/** Installs the missing tools' packages in one apt-get run; throws SystemToolError saying why not. */
function aptInstall(pkgs) {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  const prefix = root ? [] : ["sudo", "-n"];
  if (!root && spawnSync("sudo", ["-n", "true"], { stdio: "ignore" }).status !== 0) {
    throw new SystemToolError(
      `${pkgs.join(", ")} missing, and this user can neither install packages nor sudo without a password: apt-get install ${pkgs.join(" ")}`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const t0 = Date.now();
  log(`installing ${pkgs.join(", ")} with apt-get ...`);
  for (const args of [
    ["update", "-q"],
    ["install", "-y", "-q", ...pkgs],
  ]) {
    const [cmd, ...rest] = [...prefix, "apt-get", ...args];
    const r = spawnSync(cmd, rest, { stdio: ["ignore", "ignore", "pipe"], env, encoding: "utf8" });
    if (r.status !== 0)
      throw new SystemToolError(`apt-get ${args[0]} failed (exit ${r.status ?? r.signal}): ${(r.stderr ?? "").trim().split("\n").slice(-3).join(" | ")}`);
  }
  log(`installed ${pkgs.join(", ")} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** Makes sure each named tool is present (installing what is missing); returns name → path. */
export function ensureSystemTools(names) {
  const missing = names.filter((n) => !findSystemTool(n));
  if (missing.length) {
    const unset = missing.filter((n) => !process.env[SYSTEM_TOOLS[n].env]);
    if (unset.length < missing.length) {
      const bad = missing.find((n) => process.env[SYSTEM_TOOLS[n].env]);
      throw new SystemToolError(`${SYSTEM_TOOLS[bad].env}=${process.env[SYSTEM_TOOLS[bad].env]} is not an executable`);
    }
    if (process.platform !== "linux" || !findOnPath("apt-get")) {
      throw new SystemToolError(
        `${missing.join(", ")} not found, and there is no apt-get here to install it: install it, or set ${missing.map((n) => SYSTEM_TOOLS[n].env).join(" / ")}`,
      );
    }
    aptInstall(missing.map((n) => SYSTEM_TOOLS[n].pkg));
  }
  const out = {};
  for (const n of names) {
    const p = findSystemTool(n);
    if (!p) throw new SystemToolError(`${n} is still not found after installing ${SYSTEM_TOOLS[n].pkg}`);
    out[n] = p;
  }
  return out;
}

function findOnPath(name) {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => dir && executable(join(dir, name)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    for (const [name, path] of Object.entries(ensureSystemTools(Object.keys(SYSTEM_TOOLS)))) process.stdout.write(`${name}: ${path}\n`);
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}

import { describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import semver from "semver";

/**
 * Orchestrator runs on Node 20.19+, 22.12+ and 24. Every installed package must say it does, or be listed
 * here with the reason it runs on Node 20 all the same (the whole suite runs on Node 20 in CI).
 * A new dependency that drops Node 20 fails this test until someone has looked. Better than a review:
 * an `overrides` entry in the root package.json with a version that supports them all, since npm ci
 * warns EBADENGINE for every package listed here (the lockfile test below allows none).
 */
const REVIEWED: Record<string, string> = {};

const NODE_VERSIONS = ["20.19.0", "22.12.0", "24.0.0"];
const root = fileURLToPath(new URL("../..", import.meta.url));

function* packages(dir: string): Generator<string> {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    if (name.startsWith(".")) continue;
    const p = join(dir, name);
    if (name.startsWith("@")) {
      yield* packages(p);
      continue;
    }
    if (existsSync(join(p, "package.json"))) yield p;
    yield* packages(join(p, "node_modules"));
  }
}

describe("dependencies", () => {
  it("run on Node 20, 22 and 24 (or are reviewed)", () => {
    const excluding = new Map<string, string>();
    for (const dir of packages(join(root, "node_modules"))) {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string; engines?: { node?: string } };
      const range = pkg.engines?.node;
      if (!pkg.name || !range || !semver.validRange(range)) continue;
      const missing = NODE_VERSIONS.filter((v) => !semver.satisfies(v, range));
      if (missing.length > 0) excluding.set(pkg.name, `${pkg.name}@${pkg.version} engines.node "${range}" excludes ${missing.join(", ")}`);
    }
    const unreviewed = [...excluding.entries()].filter(([name]) => !(name in REVIEWED)).map(([, why]) => why);
    expect(unreviewed).toEqual([]);
    // A reviewed entry that no longer applies should go.
    expect(Object.keys(REVIEWED).filter((n) => !excluding.has(n))).toEqual([]);
  });

  it("npm ci warns no EBADENGINE on a supported Node: no locked package's engines exclude one", () => {
    const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as {
      packages: Record<string, { version?: string; optional?: boolean; engines?: { node?: string } | string[] }>;
    };
    // Optional packages are another platform's builds, installed (and checked above) only there.
    const excluding = Object.entries(lock.packages).flatMap(([path, p]) => {
      const range = p.optional || !p.engines || Array.isArray(p.engines) ? undefined : p.engines.node;
      if (!range || !semver.validRange(range)) return [];
      const missing = NODE_VERSIONS.filter((v) => !semver.satisfies(v, range));
      return missing.length > 0 ? [`${path}@${p.version} engines.node "${range}" excludes ${missing.join(", ")}`] : [];
    });
    expect(excluding).toEqual([]);
  });

  it("include nothing whose install script npm would skip", () => {
    const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as { packages: Record<string, { hasInstallScript?: boolean }> };
    const withScripts = Object.entries(lock.packages)
      .filter(([, p]) => p.hasInstallScript)
      .map(([path]) => path.replace(/^.*node_modules\//, ""));
    // protobufjs's postinstall only prints a version-scheme warning; msgpackr-extract's (a benchmark
    // dependency, through bullmq → msgpackr) only looks for a prebuilt binary that its platform
    // package already ships, and msgpackr falls back to JavaScript without it. @scarf/scarf (through
    // swagger-ui-dist, the assets of /docs) only sends install telemetry: denied, nothing is lost.
    // core-js (a peer dependency of redoc, whose standalone bundle /redoc serves and which bundles
    // its own) only prints a funding banner. The root package.json denies all four.
    expect(withScripts.sort()).toEqual(["@scarf/scarf", "core-js", "msgpackr-extract", "protobufjs"]);
  });
});

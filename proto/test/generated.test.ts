import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { jsonToStruct, loadOrchestratorProto, structToJson } from "../src/index.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const walk = (d: string): string[] => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? walk(join(d, f)) : [join(d, f)]));

describe("proto", () => {
  it("has generated types that match the .proto files (run `npm run generate -w @orch/proto`)", () => {
    const out = mkdtempSync(join(tmpdir(), "orch-proto-"));
    try {
      execFileSync(process.execPath, [join(root, "scripts", "generate.mjs"), out], { stdio: "pipe" });
      const committed = join(root, "src", "generated");
      const files = (d: string) =>
        walk(d)
          .map((f) => relative(d, f))
          .sort();
      expect(files(out)).toEqual(files(committed));
      for (const f of files(out)) expect(readFileSync(join(out, f), "utf8"), f).toBe(readFileSync(join(committed, f), "utf8"));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("loads the OrchestratorService", () => {
    const proto = loadOrchestratorProto();
    expect(Object.keys(proto.orchestrator.v1.OrchestratorService.service)).toEqual([
      "CreateJob",
      "GetJob",
      "WatchJob",
      "CreateRun",
      "GetRun",
      "ListRuns",
      "SignalRun",
      "GetHistory",
      "WatchRun",
      "PutDefinition",
      "ListDefinitions",
      "ImportDefinitions",
      "PutProject",
      "GetProject",
      "ListProjects",
      "GetSession",
      "ListSessions",
      "WatchSession",
      "CancelSession",
    ]);
  });

  it("loads the SchedulerService", () => {
    const proto = loadOrchestratorProto();
    expect(Object.keys(proto.orchestrator.v1.SchedulerService.service)).toEqual([
      "CreateSchedule",
      "ListSchedules",
      "GetSchedule",
      "UpdateSchedule",
      "PauseSchedule",
      "ResumeSchedule",
      "DeleteSchedule",
      "TriggerSchedule",
      "BackfillSchedule",
    ]);
  });

  it("round-trips JSON through google.protobuf.Struct", () => {
    const v = { a: 1, b: "x", c: true, d: null, e: [1, "y", { f: false }], g: { h: { i: 2 } } };
    const s = jsonToStruct(v);
    const decoded = loadOrchestratorProto().google.protobuf.Struct;
    expect(decoded).toBeDefined();
    expect(structToJson(s as never)).toEqual(v);
  });
});

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StepErrorCode } from "@orch/contracts";
import { fakeOllama, fakeOpenAiChat, type FakeModelServer } from "@orch/testing";
import { LocalLlmExecutor, checkEndpoint, isLocalHost, policyFromConfig, type LlmPolicy } from "../src/llm/index.js";
import { hubConfig, sessionContext, tempRepo, testLogger } from "./llm-helpers.js";

/** Seed 001's LLM policy: which model servers may be called, decided before any request. */

const oss: LlmPolicy = { policy: "oss", allowHosted: false, allowedHosts: [] };

describe("isLocalHost", () => {
  it.each([
    "localhost",
    "api.localhost",
    "127.0.0.1",
    "127.8.9.1",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.10",
    "169.254.1.1",
    "::1",
    "[::1]",
    "fd12::1",
    "fe80::1",
    "::ffff:10.0.0.1",
    "ollama",
    "gpu-box.local",
    "llm.internal",
    "nas.lan",
  ])("%s is local", (h) => expect(isLocalHost(h)).toBe(true));
  it.each(["api.openai.com", "8.8.8.8", "172.32.0.1", "192.169.0.1", "2001:4860::8888", "ollama.example.com", "::ffff:8.8.8.8"])("%s is hosted", (h) =>
    expect(isLocalHost(h)).toBe(false),
  );
});

describe("checkEndpoint", () => {
  it("oss allows local servers and refuses hosted ones, saying how to allow them", () => {
    expect(checkEndpoint("http://localhost:11434", oss)).toEqual({ ok: true });
    expect(checkEndpoint("http://192.168.1.5:8000/v1", oss)).toEqual({ ok: true });
    const refused = checkEndpoint("https://api.openai.com/v1", oss);
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.reason).toMatch(/ALLOW_HOSTED_LLM=true.*LOCAL_LLM_ALLOWED_HOSTS/);
  });

  it("LOCAL_LLM_ALLOWED_HOSTS allows a host by name or host:port, case-insensitively", () => {
    expect(checkEndpoint("https://LLM.Example.com/v1", { ...oss, allowedHosts: ["llm.example.com"] })).toEqual({ ok: true });
    expect(checkEndpoint("http://llm.example.com:8000", { ...oss, allowedHosts: ["llm.example.com:8000"] })).toEqual({ ok: true });
    expect(checkEndpoint("http://llm.example.com:9000", { ...oss, allowedHosts: ["llm.example.com:8000"] }).ok).toBe(false);
    expect(checkEndpoint("https://llm.example.com", { ...oss, allowedHosts: ["llm.example.com:443"] })).toEqual({ ok: true });
  });

  it("ALLOW_HOSTED_LLM and the hosted policy allow any http(s) server; locked allows none", () => {
    expect(checkEndpoint("https://api.openai.com/v1", { ...oss, allowHosted: true })).toEqual({ ok: true });
    expect(checkEndpoint("https://api.openai.com/v1", { ...oss, policy: "hosted" })).toEqual({ ok: true });
    expect(checkEndpoint("http://localhost:11434", { ...oss, policy: "locked" }).ok).toBe(false);
    expect(checkEndpoint("file:///etc/passwd", { ...oss, policy: "hosted" }).ok).toBe(false);
    expect(checkEndpoint("not a url", oss).ok).toBe(false);
  });

  it("policyFromConfig reads the three settings", () => {
    expect(policyFromConfig(hubConfig({ ORCH_LLM_POLICY: "hosted", ALLOW_HOSTED_LLM: "true", LOCAL_LLM_ALLOWED_HOSTS: "a.example, b.example:8000" }))).toEqual({
      policy: "hosted",
      allowHosted: true,
      allowedHosts: ["a.example", "b.example:8000"],
    });
    expect(policyFromConfig(hubConfig({}))).toEqual(oss);
  });
});

describe.each([
  { api: "ollama", fake: () => fakeOllama() },
  { api: "openai", fake: () => fakeOpenAiChat({ sideRequests: false }) },
] as const)("the executor under the policy ($api)", ({ api, fake }) => {
  let server: FakeModelServer;
  let repo: ReturnType<typeof tempRepo>;
  beforeEach(async () => {
    server = await fake().start();
    repo = tempRepo();
  });
  afterEach(async () => {
    await server.stop();
    repo.cleanup();
  });

  it("locked: the step fails with LLM_POLICY_REFUSED (not retryable) and neither run() nor check() makes a request", async () => {
    server.script({ text: "must not be asked" });
    const exec = new LocalLlmExecutor(
      hubConfig({ LOCAL_LLM_API: api, LOCAL_LLM_URL: server.url, ORCH_LLM_POLICY: "locked", LOCAL_LLM_ERROR_MODE: "throw" }),
      testLogger().logger,
    );
    const ctx = sessionContext(repo.path);
    const r = await exec.run(ctx);
    expect(r.ok).toBe(false);
    expect(r.error).toMatchObject({ code: StepErrorCode.LlmPolicyRefused, retryable: false });
    expect(r.error!.message).toContain("locked");
    const c = await exec.check();
    expect(c.ok).toBe(false);
    expect(c.detail).toContain("locked");
    expect(server.requests).toHaveLength(0);
    expect(ctx.events).toEqual([]);
  });

  it("a hosted endpoint under oss is refused before any request; the same local server is used when allowed", async () => {
    // `.invalid` never resolves: even a broken policy could not reach a public server from here.
    const refused = new LocalLlmExecutor(hubConfig({ LOCAL_LLM_API: api, LOCAL_LLM_URL: "https://models.example.invalid" }), testLogger().logger);
    const r = await refused.run(sessionContext(repo.path));
    expect(r.error).toMatchObject({ code: StepErrorCode.LlmPolicyRefused, retryable: false });
    expect(r.error!.message).toContain("models.example.invalid");
    expect((await refused.check()).ok).toBe(false);

    server.script({ text: "local answer" });
    const local = new LocalLlmExecutor(hubConfig({ LOCAL_LLM_API: api, LOCAL_LLM_URL: server.url }), testLogger().logger);
    expect(await local.run(sessionContext(repo.path))).toMatchObject({ ok: true, summary: "local answer" });
    expect(server.turnRequests).toHaveLength(1);
  });
});

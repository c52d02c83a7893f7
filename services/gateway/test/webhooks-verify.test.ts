import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { verifyGitHubSignature, verifyGitLabToken, verifyWebhook } from "../src/surfaces/webhooks/index.js";
import { githubExample } from "./webhooks-support.js";

const SECRET = "It's a Secret to Everybody";
/** Computed here with node:crypto, independently of the library under test. */
const hubSignature = (secret: string, body: Uint8Array | string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

// A real delivery body, as GitHub would send it (pretty-printed JSON, UTF-8, non-ASCII included).
const body = Buffer.from(JSON.stringify({ ...githubExample("push", 4), note: "héllo – ✓" }, null, 2), "utf8");

describe("verifyGitHubSignature", () => {
  it("accepts the HMAC-SHA256 of the raw body", async () => {
    expect(await verifyGitHubSignature(SECRET, body, hubSignature(SECRET, body))).toEqual({ ok: true });
  });

  it("matches GitHub's documented test vector", async () => {
    // docs.github.com, "Validating webhook deliveries": secret "It's a Secret to Everybody", payload "Hello, World!".
    const sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    expect(await verifyGitHubSignature(SECRET, Buffer.from("Hello, World!"), sig)).toEqual({ ok: true });
    expect(await verifyGitHubSignature(SECRET, "Hello, World!", sig)).toEqual({ ok: true });
  });

  it("accepts the body as a string too, and hex in upper case", async () => {
    expect(await verifyGitHubSignature(SECRET, body.toString("utf8"), hubSignature(SECRET, body))).toEqual({ ok: true });
    const upper = `sha256=${hubSignature(SECRET, body).slice(7).toUpperCase()}`;
    expect(await verifyGitHubSignature(SECRET, body, upper)).toEqual({ ok: true });
  });

  it("refuses a signature made with another secret", async () => {
    expect(await verifyGitHubSignature(SECRET, body, hubSignature("another secret", body))).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("refuses a tampered body", async () => {
    const sig = hubSignature(SECRET, body);
    const tampered = Buffer.from(body);
    tampered[tampered.indexOf("master")] = "M".charCodeAt(0);
    expect(await verifyGitHubSignature(SECRET, tampered, sig)).toEqual({ ok: false, reason: "bad_signature" });
    // One byte more or less.
    expect(await verifyGitHubSignature(SECRET, Buffer.concat([body, Buffer.from(" ")]), sig)).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verifyGitHubSignature(SECRET, body.subarray(0, -1), sig)).toEqual({ ok: false, reason: "bad_signature" });
    // The same JSON, re-serialized: not the bytes GitHub signed.
    const reserialized = Buffer.from(JSON.stringify(JSON.parse(body.toString("utf8"))));
    expect(await verifyGitHubSignature(SECRET, reserialized, sig)).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("says the signature is missing when there is none", async () => {
    for (const sig of [undefined, "", "   ", [], [""]]) {
      expect(await verifyGitHubSignature(SECRET, body, sig)).toEqual({ ok: false, reason: "missing_signature" });
    }
  });

  it("refuses malformed signatures without computing anything", async () => {
    const good = hubSignature(SECRET, body);
    const hex = good.slice("sha256=".length);
    const sha1 = `sha1=${createHmac("sha1", SECRET).update(body).digest("hex")}`;
    for (const sig of [hex, sha1, `sha256=${hex.slice(1)}`, `sha256=${hex}0`, `sha256=${hex.slice(1)}z`, `SHA256=${hex}`, `sha256= ${hex}`, "sha256="]) {
      expect(await verifyGitHubSignature(SECRET, body, sig), sig).toEqual({ ok: false, reason: "bad_signature" });
    }
  });

  it("refuses two signature headers, even if one is right", async () => {
    const good = hubSignature(SECRET, body);
    expect(await verifyGitHubSignature(SECRET, body, [good, good])).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verifyGitHubSignature(SECRET, body, [good])).toEqual({ ok: true });
  });

  it("keeps a byte-order mark: the signature covers the bytes as sent", async () => {
    const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body]);
    expect(await verifyGitHubSignature(SECRET, withBom, hubSignature(SECRET, withBom))).toEqual({ ok: true });
    expect(await verifyGitHubSignature(SECRET, withBom, hubSignature(SECRET, body))).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("refuses a body that is not UTF-8, so no two bodies can share a signature through U+FFFD", async () => {
    // 0xff and 0xfe both decode leniently to U+FFFD: a lenient decode would make these one body.
    const a = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]);
    const b = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xfe, 0x22, 0x7d]);
    const lenient = hubSignature(SECRET, Buffer.from(a.toString("utf8"), "utf8"));
    expect(await verifyGitHubSignature(SECRET, a, hubSignature(SECRET, a))).toEqual({ ok: false, reason: "bad_signature" });
    expect(await verifyGitHubSignature(SECRET, b, lenient)).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("refuses an empty body", async () => {
    expect(await verifyGitHubSignature(SECRET, Buffer.alloc(0), hubSignature(SECRET, ""))).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("throws on an empty secret: verifying against nothing is a configuration error", async () => {
    await expect(verifyGitHubSignature("", body, hubSignature("", body))).rejects.toThrow(TypeError);
  });
});

describe("verifyGitLabToken", () => {
  it("accepts the configured token", () => {
    expect(verifyGitLabToken(SECRET, SECRET)).toEqual({ ok: true });
    expect(verifyGitLabToken(SECRET, [SECRET])).toEqual({ ok: true });
  });

  it("refuses any other token, whatever its length", () => {
    for (const t of ["wrong", SECRET.slice(0, -1), `${SECRET}!`, SECRET.toUpperCase(), `${SECRET}${SECRET}`, "x".repeat(10_000), "é"]) {
      expect(verifyGitLabToken(SECRET, t), t.slice(0, 20)).toEqual({ ok: false, reason: "bad_token" });
    }
  });

  it("says the token is missing when there is none", () => {
    for (const t of [undefined, "", "  ", [], [""]]) expect(verifyGitLabToken(SECRET, t)).toEqual({ ok: false, reason: "missing_token" });
  });

  it("refuses two token headers", () => {
    expect(verifyGitLabToken(SECRET, [SECRET, SECRET])).toEqual({ ok: false, reason: "bad_token" });
  });

  it("handles non-ASCII secrets", () => {
    expect(verifyGitLabToken("sécret-✓", "sécret-✓")).toEqual({ ok: true });
    expect(verifyGitLabToken("sécret-✓", "secret-✓")).toEqual({ ok: false, reason: "bad_token" });
  });

  it("throws on an empty secret", () => {
    expect(() => verifyGitLabToken("", "")).toThrow(TypeError);
  });
});

describe("verifyWebhook", () => {
  it("reads GitHub's signature header, whatever the case of its name", async () => {
    const sig = hubSignature(SECRET, body);
    expect(await verifyWebhook("github", SECRET, { "x-hub-signature-256": sig }, body)).toEqual({ ok: true });
    expect(await verifyWebhook("github", SECRET, { "X-Hub-Signature-256": sig }, body)).toEqual({ ok: true });
    expect(await verifyWebhook("github", SECRET, { "x-hub-signature": `sha1=${createHmac("sha1", SECRET).update(body).digest("hex")}` }, body)).toEqual({
      ok: false,
      reason: "missing_signature",
    });
    expect(await verifyWebhook("github", SECRET, { "x-hub-signature-256": sig }, Buffer.from("{}"))).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("reads GitLab's token header", async () => {
    expect(await verifyWebhook("gitlab", SECRET, { "x-gitlab-token": SECRET }, body)).toEqual({ ok: true });
    expect(await verifyWebhook("gitlab", SECRET, { "X-Gitlab-Token": SECRET }, body)).toEqual({ ok: true });
    expect(await verifyWebhook("gitlab", SECRET, { "x-gitlab-token": "nope" }, body)).toEqual({ ok: false, reason: "bad_token" });
    expect(await verifyWebhook("gitlab", SECRET, {}, body)).toEqual({ ok: false, reason: "missing_token" });
    // A GitHub signature is no GitLab token.
    expect(await verifyWebhook("gitlab", SECRET, { "x-hub-signature-256": hubSignature(SECRET, body) }, body)).toEqual({ ok: false, reason: "missing_token" });
  });
});

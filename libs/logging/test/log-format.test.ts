import { describe, expect, it } from "vitest";
import { logFormat } from "../src/index.js";

/** How the dev runner prints logs: ORCH_LOG_FORMAT, or seed 004's TASKSGODZILLA_LOG_JSON. */
describe("logFormat", () => {
  it("defaults to pretty on a terminal, json otherwise", () => {
    expect(logFormat({}, true)).toBe("pretty");
    expect(logFormat({}, false)).toBe("json");
    expect(logFormat({ ORCH_LOG_FORMAT: "" }, true)).toBe("pretty");
  });

  it("ORCH_LOG_FORMAT=json|pretty", () => {
    expect(logFormat({ ORCH_LOG_FORMAT: "json" }, true)).toBe("json");
    expect(logFormat({ ORCH_LOG_FORMAT: "pretty" }, false)).toBe("pretty");
    expect(logFormat({ ORCH_LOG_FORMAT: "JSON" }, true)).toBe("json");
  });

  it("TASKSGODZILLA_LOG_JSON=true is json even on a terminal; false is pretty; ORCH_LOG_FORMAT wins", () => {
    expect(logFormat({ TASKSGODZILLA_LOG_JSON: "true" }, true)).toBe("json");
    expect(logFormat({ TASKSGODZILLA_LOG_JSON: "1" }, true)).toBe("json");
    expect(logFormat({ TASKSGODZILLA_LOG_JSON: "false" }, false)).toBe("pretty");
    expect(logFormat({ TASKSGODZILLA_LOG_JSON: "true", ORCH_LOG_FORMAT: "pretty" }, false)).toBe("pretty");
  });

  it("refuses values it does not know, naming the variable", () => {
    expect(() => logFormat({ ORCH_LOG_FORMAT: "text" }, true)).toThrow(/^ORCH_LOG_FORMAT: must be json or pretty/);
    expect(() => logFormat({ TASKSGODZILLA_LOG_JSON: "maybe" }, true)).toThrow(/^TASKSGODZILLA_LOG_JSON: must be true or false/);
  });
});

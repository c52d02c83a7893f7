/** Tracker I/O of the agent hub: seed 003's ticketing providers (Linear, Shortcut) and the forges' issues. */
export * from "./errors.js";
export * from "./factory.js";
export * from "./github-issues.js";
export * from "./gitlab-issues.js";
export * from "./linear.js";
export * from "./shortcut.js";
export * from "./types.js";
export * from "./work.js";
export * from "./dispatch.js";

/** Forge I/O of the agent hub: repository hosts (seed 003's vcs_repos), pushes, forge steps. */
export * from "./credentials.js";
export * from "./errors.js";
export * from "./factory.js";
export * from "./github-gh-cli.js";
export * from "./github-rest.js";
export * from "./github-shapes.js";
export * from "./gitlab-rest.js";
export * from "./log-tail.js";
export * from "./push.js";
export * from "./steps.js";
export * from "./sync.js";
export * from "./types.js";
export * from "./update.js";

/** The agent hub's git layer: the git CLI with seed 003's safety flags, and sessions' worktrees. */
export * from "./errors.js";
export * from "./git.js";
export { KeyedMutex } from "./mutex.js";
export * from "./workspace.js";

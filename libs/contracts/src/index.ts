export * from "./names.js";
export * from "./errors.js";
export * from "./seed000.js";
export * from "./messages.js";
export * from "./views.js";
export * from "./sessions.js";
export * from "./repos.js";

export { tasksRoutes, TASKS_RATE_LIMIT, DISPATCH_WAIT_MS } from "./routes.js";
export { TaskSurface, type DispatchOutcome, type TaskInput } from "./service.js";

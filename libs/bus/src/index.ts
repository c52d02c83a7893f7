export { connectBus, type Bus, type BusOptions, type BusStats } from "./connect.js";
export { decode, encode, publish, buildHeaders, headersToRecord, EncodeError, type Decoded, type PublishOptions } from "./codec.js";
export {
  topologySpec,
  provisionTopology,
  missingTopology,
  waitForTopology,
  TopologyMismatchError,
  DEFAULT_TOPOLOGY,
  ACK_WAIT_MS,
  type TopologyOptions,
  type TopologySpec,
  type StreamSpec,
} from "./topology.js";
export { runConsumer, parkDeadLetter, PermanentError, type ConsumerRunOptions, type HandlerContext, type RunningConsumer } from "./consumer.js";
export { replayEvents, replaySessionEvents, readEvents, countEvents, type StoredEvent, type StoredSessionEvent, type ReplayOptions } from "./events.js";
export { topologyFromConfig } from "./from-config.js";
export {
  getRunRecord,
  sendCommand,
  sendCommandAndWait,
  hasStoredCommand,
  getJobView,
  newRunId,
  submitJob,
  cancelJob,
  listRuns,
  QueryRefusedError,
  CorruptRecordError,
  type StoredRun,
  type SubmitJobOptions,
} from "./runs.js";
export { isBusUnavailable, isNoAnswer, retryWhileUnavailable } from "./errors.js";
export { sessionKey, getSessionRecord, sessionKeys, findSession, listRunSessions, type StoredSession } from "./sessions.js";

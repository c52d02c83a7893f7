export { connectBus, type Bus, type BusOptions, type BusStats } from "./connect.js";
export { publishToStream, type JsPublishOptions } from "./replies.js";
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
export {
  runConsumer,
  parkDeadLetter,
  PermanentError,
  type MessageSource,
  type ConsumerRunOptions,
  type HandlerContext,
  type RunningConsumer,
} from "./consumer.js";
export {
  replayEvents,
  replayTransitions,
  replaySessionEvents,
  readEvents,
  countTransitions,
  parseFeedPosition,
  feedId,
  decodeTransitionHead,
  transitionDecoder,
  type ConsumedTransition,
  type FeedEvent,
  type FeedPosition,
  type ReadTransition,
  type StoredSessionEvent,
  type ReplayOptions,
  type EventReplayOptions,
} from "./events.js";
export { topologyFromConfig } from "./from-config.js";
export {
  lastTransition,
  getRunView,
  getRunSummary,
  finishedBefore,
  sendCommand,
  sendCommandAndWait,
  hasStoredCommand,
  newRunId,
  listRuns,
  QueryRefusedError,
  type StoredTransition,
} from "./runs.js";
export { isBusUnavailable, isCasConflict, isJsNotFound, isNoAnswer, retryWhileUnavailable } from "./errors.js";
export { sessionKey, getSessionRecord, sessionKeys, findSession, listRunSessions, type StoredSession } from "./sessions.js";

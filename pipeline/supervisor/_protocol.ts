/**
 * The messages the supervisor and its workers exchange. Everything here is structured-clone-able:
 * no functions, no class instances that must survive the trip.
 *
 * @module
 */
import type { BrokerTransportOptions } from "../transport/broker.ts";
import type { ProcessingGuarantee } from "../guarantee.ts";
import type { OutcomeKind } from "../runner.ts";
import type { MemberState } from "../health.ts";
import type { MetricFamily } from "../telemetry/prometheus.ts";
import { PipelineError } from "../errors.ts";

/** Where a worker finds the pipeline: a module that exports a factory. */
export interface PipelineModuleSpec {
  /** The URL of the module (e.g. `new URL("./worker_pipeline.ts", import.meta.url).href`). */
  readonly module: string;
  /** The name of the exported factory: `(options) => Pipeline`. */
  readonly export: string;
  /** What the factory is called with; must be structured-clone-able. */
  readonly options?: unknown;
}

/** A transport every worker can open on its own. */
export type TransportSpec =
  | {
    /** A broker transport, on the client `options.client` names (kafkajs by default). */
    readonly kind: "kafka";
    /** The `KAFKA_BROKERS` value. */
    readonly brokers: string;
    /**
     * Kafka transport options, without the logger function (it cannot be posted). The
     * supervisor fills in `security` (from the environment unless given), so every worker
     * connects with the same TLS and SASL settings as the parent.
     */
    readonly options?: Omit<BrokerTransportOptions, "logger">;
  }
  | {
    /** The embedded transport: refused, its logs cannot be shared across workers. */
    readonly kind: "embedded";
  };

/** One delivery's outcome as a worker reports it: the record's bytes stay in the worker. */
export interface WorkerOutcome {
  /** The stage. */
  readonly stage: string;
  /** What happened. */
  readonly kind: OutcomeKind;
  /** Handler attempts made in this delivery. */
  readonly attempts: number;
  /** Attempts in this delivery that were retries. */
  readonly retries: number;
  /** The error type, for dead-lettered and retry-scheduled outcomes. */
  readonly errorType?: string;
  /** Records produced to the output topic. */
  readonly outputs: number;
  /** The topic the record was read from. */
  readonly topic: string;
  /** The partition the record was read from. */
  readonly partition: number;
  /** The record's offset. */
  readonly offset: number;
}

/** An error as it crosses the worker boundary. */
export interface WorkerError {
  /** The error's class name. */
  readonly name: string;
  /** The message. */
  readonly message: string;
  /** The stack, when there is one. */
  readonly stack?: string;
  /**
   * Whether the error said retrying may help (a framework error's `retriable`, e.g. a
   * `BrokerUnavailableError`): the supervisor rides such crashes out for a bounded time.
   * @default false
   */
  readonly retriable?: boolean;
}

/** Parent to worker: start the member. */
export interface StartMessage {
  readonly type: "start";
  readonly pipeline: PipelineModuleSpec;
  readonly transport: TransportSpec;
  readonly stage: string;
  readonly worker: string;
  /** Outcomes are posted at least this often, in milliseconds. */
  readonly flushEveryMs: number;
  /** Outcomes are posted as soon as this many are waiting. */
  readonly flushAt: number;
  /** Telemetry of the worker; omitted, the worker records nothing. */
  readonly telemetry?: WorkerTelemetrySpec;
  /** The processing guarantee of the worker's member; omitted, `at_least_once`. */
  readonly guarantee?: ProcessingGuarantee;
}

/** How a worker sets up its own telemetry (each worker exports its own, from `OTEL_*`). */
export interface WorkerTelemetrySpec {
  /** `service.name` (`OTEL_SERVICE_NAME` still overrides it). */
  readonly serviceName: string;
  /** `service.version`. */
  readonly serviceVersion?: string;
  /** How process spans relate to the producer's span: child (`parent`) or `link`. */
  readonly parenting?: "parent" | "link";
  /** The lowest level of the worker's JSON log lines. */
  readonly logLevel?: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  /** Keep metrics for scraping: the worker answers `collect` with its metric families. */
  readonly prometheus?: boolean;
}

/** Parent to worker: close the member and report back. */
export interface DrainMessage {
  readonly type: "drain";
}

/** Parent to worker: send your metrics (answered with `metrics` and the same `id`). */
export interface CollectMessage {
  readonly type: "collect";
  readonly id: number;
}

/** What the parent posts. */
export type ToWorker = StartMessage | DrainMessage | CollectMessage;

/** What a worker posts. */
export type FromWorker =
  | { readonly type: "started" }
  | { readonly type: "outcomes"; readonly outcomes: readonly WorkerOutcome[] }
  | { readonly type: "failed"; readonly error: WorkerError }
  | { readonly type: "state"; readonly state: MemberState; readonly detail?: string }
  | { readonly type: "metrics"; readonly id: number; readonly families: readonly MetricFamily[] }
  | { readonly type: "drained" };

/** Turns any thrown value into a {@linkcode WorkerError}. */
export function toWorkerError(error: unknown): WorkerError {
  if (error instanceof Error) {
    // Framework errors, and client library errors (kafkajs's carry the same flag), say
    // whether retrying may help.
    const retriable = error instanceof PipelineError
      ? error.retriable
      : (error as { retriable?: unknown }).retriable === true;
    return { name: error.name, message: error.message, stack: error.stack, retriable };
  }
  return { name: "Error", message: String(error) };
}

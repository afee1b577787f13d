/**
 * The worker supervisor: each consuming stage of a pipeline runs in N Deno Web Workers, each a
 * member of the stage's consumer group. A worker that crashes is restarted with backoff, per
 * one {@linkcode RestartPolicy}, and given up when it crashes too often; `stop()` drains every
 * worker (stop fetching, finish in-flight records, commit, flush) within a deadline.
 *
 * Handlers cannot be posted to a worker, so workers are told which module builds the
 * pipeline: `{ module, export, options }`. Each worker imports it, calls the factory with the
 * options, and opens its own transport from a {@linkcode TransportSpec}.
 *
 * @example
 * ```ts ignore
 * import { startSupervisor } from "./mod.ts";
 * const supervisor = await startSupervisor({
 *   pipeline: {
 *     module: new URL("../../stages/worker_pipeline.ts", import.meta.url).href,
 *     export: "createWorkerPipeline",
 *     options: { failureRate: 0.2 },
 *   },
 *   transport: { kind: "kafka", brokers: "127.0.0.1:9092" },
 * }, { onEvent: (event) => console.error(event) });
 * // ... later, on SIGTERM:
 * await supervisor.stop(10_000);
 * ```
 *
 * @module
 */
import type { ProcessingGuarantee } from "../guarantee.ts";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import type { Pipeline } from "../definition.ts";
import { ConfigError, PipelineError } from "../errors.ts";
import type { Readiness } from "../health.ts";
import { buildPipeline } from "../pipeline_module.ts";
import type { MetricFamily } from "../telemetry/prometheus.ts";
import { createBrokerTransport } from "../transport/broker.ts";
// Only the settings parser: the transport (and kafkajs, which reads the environment when it
// loads) is imported where a Kafka run needs it.
import { kafkaSecurityFromEnv } from "../transport/kafka/security.ts";
import { toWorkerError } from "./_protocol.ts";
import type {
  FromWorker,
  PipelineModuleSpec,
  StartMessage,
  TransportSpec,
  WorkerError,
  WorkerOutcome,
  WorkerTelemetrySpec,
} from "./_protocol.ts";
import { DEFAULT_RESTART_POLICY, RestartTracker, validateRestartPolicy } from "./restart_policy.ts";
import type { RestartDecision, RestartPolicy } from "./restart_policy.ts";

export type {
  PipelineModuleSpec,
  TransportSpec,
  WorkerError,
  WorkerOutcome,
  WorkerTelemetrySpec,
} from "./_protocol.ts";
export { DEFAULT_RESTART_POLICY, RestartTracker, validateRestartPolicy } from "./restart_policy.ts";
export type { RestartDecision, RestartPolicy } from "./restart_policy.ts";

/** How one stage is run. */
export interface StageWorkers {
  /**
   * Workers (consumer group members) for the stage; at most its input's partitions.
   * @default min(partitions of the input, navigator.hardwareConcurrency)
   */
  readonly workers?: number;
}

/** What to supervise. Everything here is posted to workers, so it must be clone-able. */
export interface SupervisorSpec {
  /** The module and factory that build the pipeline. */
  readonly pipeline: PipelineModuleSpec;
  /** The transport each worker opens. Only `kafka` can be shared by workers. */
  readonly transport: TransportSpec;
  /**
   * Per stage name: how many workers.
   * @default every consuming stage, default worker count
   */
  readonly stages?: Readonly<Record<string, StageWorkers>>;
  /**
   * Telemetry of every worker: each sets up its own SDK from the `OTEL_*` variables, with
   * `service.instance.id` set to the worker's id.
   * @default no telemetry in workers
   */
  readonly telemetry?: WorkerTelemetrySpec;
  /**
   * The processing guarantee every worker's member runs with (`PROCESSING_GUARANTEE`).
   * @default "at_least_once"
   */
  readonly guarantee?: ProcessingGuarantee;
}

/** A worker crashed, failed to start, or could not be drained. */
export class WorkerCrashError extends PipelineError {
  /** The worker. */
  readonly worker: string;
  /** The error as the worker reported it. */
  readonly reported: WorkerError;

  /** Creates the error for `worker` from what it reported. */
  constructor(worker: string, stage: string, reported: WorkerError) {
    super(`Worker "${worker}" crashed: ${reported.name}: ${reported.message}`, { stage });
    this.worker = worker;
    this.reported = reported;
    if (reported.stack) this.stack = `${this.name}: ${this.message}\n${reported.stack}`;
  }

  /** Always `true`: restarting may help. */
  override readonly retriable: boolean = true;
}

/** One thing that happened to a worker. */
export type SupervisorEvent =
  | {
    /** The worker's member joined its group and is consuming. */
    readonly type: "started";
    readonly stage: string;
    readonly worker: string;
    /** Restarts so far within the window (0 for the first start). */
    readonly restarts: number;
  }
  | {
    /** The worker crashed (one event per crash). */
    readonly type: "crash";
    readonly stage: string;
    readonly worker: string;
    readonly error: WorkerCrashError;
    /** The restart to come, or `null` when the worker is given up. */
    readonly restart: { readonly attempt: number; readonly delayMs: number } | null;
  }
  | {
    /** The worker crashed more than `maxRestarts` times within `windowMs`: not restarted. */
    readonly type: "gave-up";
    readonly stage: string;
    readonly worker: string;
    readonly error: WorkerCrashError;
    /** Crashes within the window. */
    readonly crashes: number;
  }
  | {
    /** The worker is gone after `stop()`: drained, or terminated at the deadline. */
    readonly type: "stopped";
    readonly stage: string;
    readonly worker: string;
    readonly drained: boolean;
  };

/** Options for {@linkcode startSupervisor}. */
export interface SupervisorOptions {
  /**
   * How crashed workers are restarted; fields left out keep their default.
   * @default DEFAULT_RESTART_POLICY (500 ms doubling to 10 s; more than 5 crashes a minute gives
   *   up; retriable crashes, a broker outage, are ridden out for 2 minutes)
   */
  readonly restart?: Partial<RestartPolicy>;
  /**
   * Called once per delivery a worker reports, shortly after its outcome is durable.
   * @default none
   */
  readonly onOutcome?: (outcome: WorkerOutcome) => void;
  /**
   * Called once per worker event: started, crash, gave-up, stopped.
   * @default none
   */
  readonly onEvent?: (event: SupervisorEvent) => void;
  /**
   * Time for restart delays, the crash window and the stop deadline.
   * @default systemClock
   */
  readonly clock?: Clock;
  /**
   * Workers post outcomes at least this often, in milliseconds.
   * @default 50
   */
  readonly flushEveryMs?: number;
  /**
   * Workers post outcomes as soon as this many are waiting.
   * @default 200
   */
  readonly flushAt?: number;
  /**
   * Where each worker's member state is recorded: `assigning` when it is spawned, then what
   * the worker reports, `stopped` when it crashes.
   * @default none
   */
  readonly readiness?: Readiness;
}

/** The state of a worker slot. */
export type WorkerState =
  | "starting"
  | "running"
  | "restarting"
  | "draining"
  | "stopped"
  | "gave-up";

/** A worker slot as `workers()` reports it. */
export interface WorkerInfo {
  /** The stage. */
  readonly stage: string;
  /** The worker's id: `<stage>#<index>`. */
  readonly id: string;
  /** Its state. */
  readonly state: WorkerState;
  /** Crashes within the restart window. */
  readonly crashes: number;
}

/** What `stop()` found. */
export interface StopReport {
  /** Workers that drained before the deadline. */
  readonly drained: readonly string[];
  /** Workers terminated at the deadline, without draining. */
  readonly terminated: readonly string[];
}

/** A running supervisor. */
export interface Supervisor {
  /** The pipeline, as the factory built it in the parent. */
  readonly pipeline: Pipeline;
  /** Every worker slot and its state. */
  workers(): WorkerInfo[];
  /**
   * Test hook: kills a worker without warning, as a crash would, and handles it as a crash
   * (restart per policy).
   *
   * @throws {PipelineError} when no worker has that id or it is not alive
   */
  terminate(id: string): void;
  /**
   * Asks every live worker for its metrics (workers set up with `telemetry.prometheus`);
   * workers that have not answered within `timeoutMs` are left out.
   */
  collectMetrics(timeoutMs?: number): Promise<MetricFamily[]>;
  /**
   * Drains every worker: each stops fetching, finishes its records in flight, commits, leaves
   * its group and flushes, then answers. Workers that have not answered after `deadlineMs` are
   * terminated. No worker is restarted after `stop()` was called.
   *
   * @param deadlineMs how long to wait for drains (default 30000)
   */
  stop(deadlineMs?: number): Promise<StopReport>;
}

interface Slot {
  readonly stage: string;
  readonly id: string;
  readonly tracker: RestartTracker;
  state: WorkerState;
  worker?: Worker;
  /** Settles when this slot's first worker started or crashed. */
  firstSettled?: () => void;
  /** Resolves when the current worker answers `drained` or dies during the drain. */
  drained?: (drained: boolean) => void;
  /** Cancels a pending restart. */
  restartAbort?: AbortController;
  /** Answers to `collect` requests, by request id. */
  collecting: Map<number, (families: readonly MetricFamily[]) => void>;
}

const WORKER_URL = new URL("./_worker.ts", import.meta.url);

function workerCounts(
  pipeline: Pipeline,
  stages: Readonly<Record<string, StageWorkers>> | undefined,
): Map<string, number> {
  for (const name of Object.keys(stages ?? {})) {
    if (!pipeline.stages.some((node) => node.stage.name === name)) {
      throw new ConfigError(
        `Cannot supervise pipeline "${pipeline.name}" as 'stages' names unknown stage "${name}"`,
        { field: `stages.${name}` },
      );
    }
  }
  const cores = navigator.hardwareConcurrency || 1;
  const counts = new Map<string, number>();
  for (const node of pipeline.stages) {
    const partitions = pipeline.topic(node.input).partitions;
    const workers = stages?.[node.stage.name]?.workers ?? Math.min(partitions, cores);
    if (!Number.isInteger(workers) || workers < 1 || workers > partitions) {
      throw new ConfigError(
        `Cannot supervise stage "${node.stage.name}" as 'workers' must be an integer from 1 to ` +
          `the ${partitions} partitions of "${node.input}": current value is ${workers}`,
        { stage: node.stage.name, field: `stages.${node.stage.name}.workers` },
      );
    }
    counts.set(node.stage.name, workers);
  }
  return counts;
}

/**
 * Starts the workers of every consuming stage and resolves once each worker's first start has
 * settled (its member is consuming, or it crashed and is being restarted or given up).
 *
 * Before any worker starts, the parent builds the pipeline itself (to learn its stages and
 * partitions) and creates its topics.
 *
 * @throws {ConfigError} for the embedded transport, an unknown module or export, an unknown
 *   stage, a worker count out of range or a bad restart policy
 */
export async function startSupervisor(
  spec: SupervisorSpec,
  options: SupervisorOptions = {},
): Promise<Supervisor> {
  const {
    onOutcome,
    onEvent,
    clock = systemClock,
    flushEveryMs = 50,
    flushAt = 200,
    readiness,
  } = options;
  const policy: RestartPolicy = { ...DEFAULT_RESTART_POLICY, ...options.restart };
  validateRestartPolicy(policy);
  if (spec.transport.kind !== "kafka") {
    throw new ConfigError(
      `Cannot supervise workers on the "${spec.transport.kind}" transport: its logs live in ` +
        `one isolate and cannot be shared by workers; run it in-process with startPipeline()`,
      { field: "transport.kind" },
    );
  }
  // The security settings are resolved once, here, and posted to every worker with the rest
  // of the transport's options: workers connect exactly as the parent does.
  const transportSpec: TransportSpec = {
    ...spec.transport,
    options: {
      ...spec.transport.options,
      security: spec.transport.options?.security ?? kafkaSecurityFromEnv(),
    },
  };
  const pipeline = await buildPipeline(spec.pipeline);
  const counts = workerCounts(pipeline, spec.stages);

  const admin = await createBrokerTransport(transportSpec.brokers, {
    ...transportSpec.options,
  });
  try {
    await admin.ensureTopics(pipeline.topics);
  } finally {
    await admin.close();
  }

  const slots: Slot[] = [];
  for (const [stage, count] of counts) {
    for (let i = 0; i < count; i++) {
      slots.push({
        stage,
        id: `${stage}#${i}`,
        tracker: new RestartTracker(policy),
        state: "starting",
        collecting: new Map(),
      });
    }
  }
  let stopping = false;
  let collections = 0;

  /**
   * Calls a caller's callback from inside a worker listener: a throw there would be uncaught
   * and end the whole process, so it is reported instead.
   */
  function guarded(what: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      console.error(
        `Supervisor ${what} callback failed: ${error instanceof Error ? error.stack : error}`,
      );
    }
  }

  function emit(event: SupervisorEvent): void {
    if (onEvent) guarded("onEvent", () => onEvent(event));
  }

  function spawn(slot: Slot): void {
    slot.state = "starting";
    readiness?.member(slot.id, slot.stage);
    const worker = new Worker(WORKER_URL, { type: "module", name: slot.id });
    slot.worker = worker;
    worker.addEventListener("message", (event: MessageEvent<FromWorker>) => {
      if (slot.worker !== worker) return;
      const message = event.data;
      switch (message.type) {
        case "started":
          if (slot.state === "starting") slot.state = "running";
          slot.tracker.started();
          emit({
            type: "started",
            stage: slot.stage,
            worker: slot.id,
            restarts: slot.tracker.recentCrashes,
          });
          settleFirst(slot);
          break;
        case "outcomes":
          if (onOutcome) {
            guarded("onOutcome", () => message.outcomes.forEach((outcome) => onOutcome(outcome)));
          }
          break;
        case "failed":
          crashed(slot, worker, message.error);
          break;
        case "state":
          readiness?.report(slot.id, message.state, message.detail);
          break;
        case "metrics":
          slot.collecting.get(message.id)?.(message.families);
          slot.collecting.delete(message.id);
          break;
        case "drained":
          finishDrain(slot, worker, true);
          break;
      }
    });
    worker.addEventListener("error", (event: ErrorEvent) => {
      // Without this the uncaught error in the worker would also end the parent.
      event.preventDefault();
      if (slot.worker !== worker) return;
      const error = event.error;
      crashed(
        slot,
        worker,
        error instanceof Error
          ? toWorkerError(error)
          : { name: "Error", message: event.message || "Uncaught error in worker" },
      );
    });
    worker.addEventListener("messageerror", () => {
      if (slot.worker !== worker) return;
      crashed(slot, worker, { name: "Error", message: "A message from the worker was unreadable" });
    });
    const start: StartMessage = {
      type: "start",
      pipeline: spec.pipeline,
      transport: transportSpec,
      stage: slot.stage,
      worker: slot.id,
      flushEveryMs,
      flushAt,
      telemetry: spec.telemetry,
      guarantee: spec.guarantee,
    };
    worker.postMessage(start);
  }

  function settleFirst(slot: Slot): void {
    slot.firstSettled?.();
    slot.firstSettled = undefined;
  }

  function finishDrain(slot: Slot, worker: Worker, drained: boolean): void {
    if (slot.worker !== worker) return;
    worker.terminate();
    slot.worker = undefined;
    slot.state = "stopped";
    slot.drained?.(drained);
    slot.drained = undefined;
  }

  function crashed(slot: Slot, worker: Worker, reported: WorkerError): void {
    if (slot.worker !== worker) return;
    worker.terminate();
    slot.worker = undefined;
    const error = new WorkerCrashError(slot.id, slot.stage, reported);
    readiness?.report(slot.id, "stopped", error.message);
    for (const answer of slot.collecting.values()) answer([]);
    slot.collecting.clear();
    if (stopping) {
      // Crashing while draining: nothing is restarted any more; report and count it undrained.
      emit({ type: "crash", stage: slot.stage, worker: slot.id, error, restart: null });
      slot.state = "stopped";
      slot.drained?.(false);
      slot.drained = undefined;
      return;
    }
    // Retriable crashes (broker unreachable) are ridden out for the outage tolerance.
    const decision: RestartDecision = slot.tracker.crashed(
      clock.now(),
      reported.retriable === true,
    );
    emit({ type: "crash", stage: slot.stage, worker: slot.id, error, restart: decision });
    if (decision === null) {
      slot.state = "gave-up";
      emit({
        type: "gave-up",
        stage: slot.stage,
        worker: slot.id,
        error,
        crashes: slot.tracker.recentCrashes,
      });
      settleFirst(slot);
      return;
    }
    slot.state = "restarting";
    settleFirst(slot);
    const abort = new AbortController();
    slot.restartAbort = abort;
    clock.sleep(decision.delayMs, abort.signal).then(
      () => {
        slot.restartAbort = undefined;
        if (!stopping) spawn(slot);
      },
      () => {
        // Aborted by stop(): the slot stays down.
        slot.restartAbort = undefined;
      },
    );
  }

  const firstStarts = slots.map((slot) =>
    new Promise<void>((resolve) => {
      slot.firstSettled = resolve;
    })
  );
  slots.forEach(spawn);
  await Promise.all(firstStarts);

  return {
    pipeline,
    workers(): WorkerInfo[] {
      return slots.map((slot) => ({
        stage: slot.stage,
        id: slot.id,
        state: slot.state,
        crashes: slot.tracker.recentCrashes,
      }));
    },
    terminate(id: string): void {
      const slot = slots.find((s) => s.id === id);
      if (slot?.worker === undefined) {
        throw new PipelineError(`Cannot terminate worker "${id}": no such worker is alive`);
      }
      const worker = slot.worker;
      worker.terminate();
      crashed(slot, worker, { name: "Error", message: "Terminated by the test hook" });
    },
    async collectMetrics(timeoutMs = 2000): Promise<MetricFamily[]> {
      const id = ++collections;
      const live = slots.filter((slot) => slot.worker !== undefined && slot.state === "running");
      const timeout = new AbortController();
      const late = clock.sleep(timeoutMs, timeout.signal).then(() => [], () => []);
      const answers = await Promise.all(live.map((slot) =>
        Promise.race([
          new Promise<readonly MetricFamily[]>((resolve) => {
            slot.collecting.set(id, resolve);
            slot.worker!.postMessage({ type: "collect", id });
          }),
          late,
        ]).finally(() => slot.collecting.delete(id))
      ));
      timeout.abort();
      return answers.flat();
    },
    async stop(deadlineMs = 30_000): Promise<StopReport> {
      stopping = true;
      for (const slot of slots) slot.restartAbort?.abort();
      const live = slots.filter((slot) => slot.worker !== undefined);
      const results = live.map((slot) =>
        new Promise<boolean>((resolve) => {
          slot.drained = resolve;
          slot.state = "draining";
          slot.worker!.postMessage({ type: "drain" });
        })
      );
      const deadline = new AbortController();
      const timedOut = clock.sleep(deadlineMs, deadline.signal).then(() => true, () => false);
      await Promise.race([Promise.all(results), timedOut]);
      deadline.abort();
      for (const slot of live) {
        if (slot.worker !== undefined) finishDrain(slot, slot.worker, false);
      }
      const outcomes = await Promise.all(results);
      const drained: string[] = [];
      const terminated: string[] = [];
      live.forEach((slot, i) => {
        (outcomes[i] ? drained : terminated).push(slot.id);
        emit({ type: "stopped", stage: slot.stage, worker: slot.id, drained: outcomes[i] });
      });
      for (const slot of slots) {
        if (slot.state !== "gave-up") slot.state = "stopped";
      }
      return { drained, terminated };
    },
  };
}

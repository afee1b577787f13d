/**
 * A pipeline run as a service: what every command shares around a pipeline's stages.
 *
 * - Telemetry of the process (OTLP from `OTEL_*`, and a pull reader for `/metrics` when a
 *   health port is given).
 * - The stages: on Kafka in supervised Deno workers (each a consumer group member; many
 *   processes on many hosts form one group), on the embedded transport in this process.
 * - Readiness ({@linkcode Readiness}): every member's state, reported by the workers to the
 *   supervisor, and the broker's reachability, probed every few seconds.
 * - `/livez`, `/readyz`, `/metrics` on `HEALTH_PORT` ({@linkcode serveHealth}); `/metrics` merges
 *   the process's own metrics with every worker's.
 * - Consumer lag per partition (`pipeline_consumer_lag`) and worker restarts
 *   (`pipeline_worker_restarts`) recorded for every pipeline.
 * - A stage left without workers (the supervisor gave up, or an in-process member stopped for
 *   good) aborts `failed`, so the command can exit non-zero.
 *
 * @example
 * ```ts ignore
 * const service = await startService({
 *   pipeline: { module: new URL("./my_pipeline.ts", import.meta.url).href, export: "pipeline" },
 *   brokers: "127.0.0.1:9092",
 *   serviceName: "my-service",
 *   health: { port: 8080 },
 * });
 * // ... on SIGTERM:
 * await service.stop(20_000);
 * ```
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import type { Pipeline } from "./definition.ts";
import type { ProcessingGuarantee } from "./guarantee.ts";
import { errorMessage, PipelineError } from "./errors.ts";
import { Readiness, watchBroker } from "./health.ts";
import type { MemberState } from "./health.ts";
import { serveHealth } from "./health_server.ts";
import type { HealthServer } from "./health_server.ts";
import type { Instrumentation } from "./instrumentation.ts";
import { getLogger } from "./log.ts";
import { pipelineLag, startPipeline } from "./run.ts";
import { buildPipeline } from "./pipeline_module.ts";
import type { RunningPipeline, StageLag } from "./run.ts";
import type { StageOutcome } from "./runner.ts";
import { startSupervisor } from "./supervisor/mod.ts";
import type {
  PipelineModuleSpec,
  StageWorkers,
  Supervisor,
  SupervisorEvent,
  WorkerOutcome,
} from "./supervisor/mod.ts";
import { LABEL, METRIC } from "./telemetry/names.ts";
import { renderPrometheus } from "./telemetry/prometheus.ts";
import { setupTelemetry } from "./telemetry/setup.ts";
import type { ParentingMode, Telemetry } from "./telemetry/mod.ts";
import type { LagSample } from "./telemetry/metrics.ts";
import { createEmbeddedTransport } from "./transport/embedded/mod.ts";
import { createBrokerTransport } from "./transport/broker.ts";
import { type KafkaClientName, parseKafkaClient } from "./transport/kafka_client.ts";
import type { Producer, Transport } from "./transport/transport.ts";

const log = getLogger(["pipeline", "service"]);

/** Where the health endpoints listen. */
export interface HealthEndpointOptions {
  /** The port (`HEALTH_PORT`); 0 picks a free one. */
  readonly port: number;
  /**
   * The address (`HEALTH_HOST`); `0.0.0.0` in a container.
   * @default "127.0.0.1"
   */
  readonly host?: string;
}

/** What a service's stages report, in or out of workers: the fields both kinds share. */
export type ServiceOutcome =
  & Pick<StageOutcome, "stage" | "kind" | "retries" | "errorType">
  & Partial<Pick<WorkerOutcome, "topic" | "partition" | "offset">>;

/** Options for {@linkcode startService}. */
export interface ServiceOptions {
  /**
   * The module and factory that build the pipeline. Workers import it; so does this process,
   * unless `build` is given.
   */
  readonly pipeline: PipelineModuleSpec;
  /**
   * Builds the pipeline in this process (for its topics, and its handlers on the embedded
   * transport), e.g. with an injected clock.
   * @default imports `pipeline.module` and calls its factory with `pipeline.options`
   */
  readonly build?: () => Pipeline | Promise<Pipeline>;
  /**
   * The `KAFKA_BROKERS` value; unset runs on the embedded transport, in this process.
   * @default unset
   */
  readonly brokers?: string;
  /**
   * The Kafka client of the broker transport, here and in the workers.
   * @default `KAFKA_CLIENT` from `env`, else "kafkajs"
   */
  readonly kafkaClient?: KafkaClientName;
  /**
   * The processing guarantee of every member, here and in the workers.
   * @default "at_least_once"
   */
  readonly guarantee?: ProcessingGuarantee;
  /**
   * The transport of this process (tests); when given, stages run in this process on it.
   * @default kafka on `brokers`, else a new embedded transport
   */
  readonly transport?: Transport;
  /**
   * Whether this process runs the pipeline's consuming stages. A producer-only command (the
   * order service) sets `false`: it is ready as soon as the broker answers.
   * @default true
   */
  readonly consume?: boolean;
  /**
   * Workers (consumer group members) per stage in this process.
   * @default min(partitions of the stage's input, cores)
   */
  readonly workers?: number | Readonly<Record<string, StageWorkers>>;
  /** `service.name` of this process and its workers (`OTEL_SERVICE_NAME` overrides it). */
  readonly serviceName: string;
  /**
   * `service.version`.
   * @default unset
   */
  readonly serviceVersion?: string;
  /**
   * `service.name` of the workers, when it differs from this process's.
   * @default serviceName
   */
  readonly workerServiceName?: string;
  /**
   * The environment `OTEL_*` settings are read from.
   * @default Deno.env.toObject()
   */
  readonly env?: Record<string, string | undefined>;
  /**
   * Serve `/livez`, `/readyz` and `/metrics`.
   * @default no health endpoints
   */
  readonly health?: HealthEndpointOptions;
  /**
   * How process spans relate to the producer's span.
   * @default "parent"
   */
  readonly parenting?: ParentingMode;
  /**
   * The lowest level of the workers' log lines.
   * @default "info"
   */
  readonly logLevel?: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  /**
   * Time, for in-process stages.
   * @default systemClock
   */
  readonly clock?: Clock;
  /**
   * How often consumer lag is read (for `pipeline_consumer_lag` and {@linkcode RunningService.lag}),
   * and the broker probed, in milliseconds.
   * @default 2000
   */
  readonly pollMs?: number;
  /** Called once per record outcome, whichever member had it. */
  readonly onOutcome?: (outcome: ServiceOutcome) => void;
  /** Called on worker starts, crashes, restarts and give-ups. */
  readonly onEvent?: (event: SupervisorEvent) => void;
}

/** A running service. */
export interface RunningService {
  /** The pipeline as this process built it. */
  readonly pipeline: Pipeline;
  /** This process's transport (admin, lag, publishing). */
  readonly transport: Transport;
  /** A producer sources may publish with; closed by `stop()`. */
  readonly producer: Producer;
  /** This process's telemetry. */
  readonly telemetry: Telemetry;
  /** The runtime instrumentation over {@linkcode telemetry}, for sources' send spans. */
  readonly instrumentation: Instrumentation;
  /** Every member's state and the broker's. */
  readonly readiness: Readiness;
  /** The health server, when `health` was given. */
  readonly health?: HealthServer;
  /** Where the stages run, for the first line of output. */
  readonly description: string;
  /** Aborted, with the error as reason, when a stage is left without members. */
  readonly failed: AbortSignal;
  /**
   * Records not yet committed by the pipeline's groups at the last lag poll, summed over
   * stages and partitions; `undefined` before the first poll answered.
   */
  lag(): number | undefined;
  /**
   * Drains: not ready from now on; every member stops fetching, finishes its records, commits
   * and leaves (workers not done by `deadlineMs` are terminated); then the producer, the
   * transport, the health server and telemetry close. Safe to call twice.
   */
  stop(deadlineMs?: number): Promise<void>;
}

function stageWorkers(
  pipeline: Pipeline,
  workers: ServiceOptions["workers"],
): Record<string, StageWorkers> | undefined {
  if (workers === undefined || typeof workers === "object") return workers;
  return Object.fromEntries(
    pipeline.stages.map((node) => [
      node.stage.name,
      { workers: Math.min(workers, pipeline.topic(node.input).partitions) },
    ]),
  );
}

/** Per-partition lag samples of a lag reading. */
function lagSamples(lags: readonly StageLag[]): LagSample[] {
  return lags.flatMap((l) =>
    l.partitions.map((p) => ({
      topic: l.topic,
      partition: p.partition,
      group: l.group,
      lag: p.lag,
    }))
  );
}

/**
 * Starts a pipeline as a service: telemetry, health, stages, lag and restart metrics. See the
 * module doc.
 *
 * @throws {ConfigError} for a pipeline module that cannot be loaded, or a bad worker count
 */
export async function startService(options: ServiceOptions): Promise<RunningService> {
  const {
    brokers,
    consume = true,
    serviceName,
    serviceVersion,
    env = Deno.env.toObject(),
    kafkaClient = parseKafkaClient(env.KAFKA_CLIENT),
    health,
    parenting = "parent",
    logLevel = "info",
    clock = systemClock,
    pollMs = 2000,
    onOutcome,
    onEvent,
  } = options;
  const pipeline = await (options.build?.() ?? buildPipeline(options.pipeline));
  const telemetry = await setupTelemetry({
    serviceName,
    serviceVersion,
    instanceId: `${serviceName}-${Deno.pid}`,
    env,
    mode: parenting,
    prometheus: health !== undefined,
  });
  const instrumentation = telemetry.instrumentation;
  const readiness = new Readiness({ readyWithoutMembers: !consume });
  const failure = new AbortController();
  const cleanups: Array<() => Promise<void>> = [];
  async function cleanUp(): Promise<void> {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error) =>
        log.warn("Cannot shut down cleanly: {error_reason}", { error_reason: errorMessage(error) })
      );
    }
  }
  cleanups.push(() => telemetry.shutdown());
  let stopDeadlineMs = 30_000;

  try {
    const inProcess = options.transport !== undefined || brokers === undefined;
    // The Kafka client is imported on first use: kafkajs reads the environment when it loads,
    // and a program that runs on the embedded transport must load without that permission.
    const transport = options.transport ??
      (brokers === undefined
        ? createEmbeddedTransport()
        : await createBrokerTransport(brokers, { client: kafkaClient }));
    if (options.transport === undefined) cleanups.push(() => transport.close());

    let supervisor: Supervisor | undefined;
    let running: RunningPipeline | undefined;
    let description: string;
    // Every stage's restart series exists from the start: a panel shows 0, not "no data".
    for (const node of pipeline.stages) {
      telemetry.metrics.counter(METRIC.WORKER_RESTARTS).add(0, { [LABEL.STAGE]: node.stage.name });
    }
    const onSupervisorEvent = (event: SupervisorEvent): void => {
      if (event.type === "crash" && event.restart) telemetry.metrics.workerRestart(event.stage);
      if (event.type === "gave-up" && !failure.signal.aborted) failure.abort(event.error);
      onEvent?.(event);
    };

    let server: HealthServer | undefined;
    if (health !== undefined) {
      server = serveHealth(readiness, {
        port: health.port,
        host: health.host,
        async metrics() {
          const own = (await telemetry.scrape?.()) ?? [];
          const workers = (await supervisor?.collectMetrics()) ?? [];
          return renderPrometheus([...own, ...workers]);
        },
      });
      cleanups.push(() => server!.close());
    }

    if (!consume) {
      await transport.ensureTopics(pipeline.topics);
      description = "no consuming stage";
    } else if (inProcess) {
      running = await startPipeline(pipeline, {
        transport,
        guarantee: options.guarantee,
        clock,
        instrumentation,
        members: typeof options.workers === "number"
          ? (node) => Math.min(options.workers as number, pipeline.topic(node.input).partitions)
          : (node) =>
            (options.workers as Record<string, StageWorkers> | undefined)?.[node.stage.name]
              ?.workers ?? node.concurrency,
        onOutcome,
        onMemberState(member: string, stage: string, state: MemberState, detail?: string) {
          if (!readiness.has(member)) readiness.member(member, stage);
          readiness.report(member, state, detail);
          if (state === "stopped" && !failure.signal.aborted) {
            failure.abort(
              new PipelineError(`Cannot keep stage "${stage}" running: ${detail}`, { stage }),
            );
          }
        },
      });
      cleanups.push(() => running!.stop());
      description = `${running.members.length} in-process member(s)`;
    } else {
      supervisor = await startSupervisor({
        pipeline: options.pipeline,
        transport: { kind: "kafka", brokers: brokers!, options: { client: kafkaClient } },
        guarantee: options.guarantee,
        stages: stageWorkers(pipeline, options.workers),
        telemetry: {
          serviceName: options.workerServiceName ?? serviceName,
          serviceVersion,
          logLevel,
          parenting,
          prometheus: health !== undefined,
        },
      }, { onOutcome, onEvent: onSupervisorEvent, readiness, clock });
      const workerCount = supervisor.workers().length;
      cleanups.push(async () => {
        await supervisor!.stop(stopDeadlineMs);
      });
      description = `${workerCount} Deno worker(s)`;
    }

    const producer = running?.producer ?? await transport.producer();
    if (running === undefined) cleanups.push(() => producer.close());

    // The broker: probed by this process; the embedded one is this process.
    const probeTopic = pipeline.topics[0]?.name;
    if (inProcess && transport.kind === "embedded") {
      readiness.broker();
    } else {
      const watch = watchBroker(
        readiness,
        () => probeTopic === undefined ? Promise.resolve() : transport.endOffsets(probeTopic),
        { intervalMs: pollMs, clock },
      );
      cleanups.push(() => watch.stop());
    }

    let lastLag: number | undefined;
    if (consume) {
      let samples: LagSample[] = [];
      const unobserve = telemetry.metrics.observeLag(() => samples);
      const stopped = new AbortController();
      const lagLoop = (async function pollLag() {
        while (!stopped.signal.aborted) {
          try {
            const lags = await pipelineLag(pipeline, transport);
            samples = lagSamples(lags);
            lastLag = lags.reduce((sum, l) => sum + l.lag, 0);
          } catch {
            // The broker probe reports an unreachable broker; the last samples stay meanwhile.
          }
          await clock.sleep(pollMs, stopped.signal).catch(() => undefined);
        }
      })();
      cleanups.push(async () => {
        stopped.abort();
        await lagLoop;
        unobserve();
      });
    }

    let stopping: Promise<void> | undefined;
    return {
      pipeline,
      transport,
      producer,
      telemetry,
      instrumentation,
      readiness,
      health: server,
      description,
      failed: failure.signal,
      lag: () => lastLag,
      stop(deadlineMs = 30_000): Promise<void> {
        stopDeadlineMs = deadlineMs;
        readiness.drain();
        stopping ??= cleanUp();
        return stopping;
      },
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

/**
 * The worker entry: one consumer group member of one stage, in its own Web Worker. The parent
 * posts `start` with where the pipeline module is and which transport to open; the worker
 * imports the module, builds the pipeline with its factory, opens its own transport and
 * producer, and runs `startStageMember`. Outcomes go back in small batches. On `drain` it closes
 * the member (stop fetching, finish in-flight records, commit, leave the group), flushes, and
 * answers `drained`.
 *
 * Errors are never swallowed: a failure to start is posted as `failed`; anything uncaught later
 * reaches the parent as an `ErrorEvent`. Either way the parent restarts the worker per policy.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { startStageMember } from "../run.ts";
import { buildPipeline } from "../pipeline_module.ts";
import type { StageMember } from "../run.ts";
import type { StageOutcome } from "../runner.ts";
import { createBrokerTransport } from "../transport/broker.ts";
import type { Producer, Transport } from "../transport/transport.ts";
import { toWorkerError } from "./_protocol.ts";
import { setupTelemetry } from "../telemetry/mod.ts";
import type { Telemetry } from "../telemetry/mod.ts";
import { configureLogging } from "../log.ts";
import type { FromWorker, StartMessage, ToWorker, WorkerOutcome } from "./_protocol.ts";

/** The worker's global scope, as far as this module uses it. */
interface WorkerScope {
  postMessage(message: FromWorker): void;
  close(): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
}

const scope = globalThis as unknown as WorkerScope;

let transport: Transport | undefined;
let producer: Producer | undefined;
let member: StageMember | undefined;
let telemetry: Telemetry | undefined;
let starting: Promise<void> | undefined;
let flushTimer: ReturnType<typeof setInterval> | undefined;
let pending: WorkerOutcome[] = [];
let flushAt = 200;

function post(message: FromWorker): void {
  scope.postMessage(message);
}

function flush(): void {
  if (pending.length === 0) return;
  const outcomes = pending;
  pending = [];
  post({ type: "outcomes", outcomes });
}

function report(outcome: StageOutcome): void {
  const { record } = outcome;
  pending.push({
    stage: outcome.stage,
    kind: outcome.kind,
    attempts: outcome.attempts,
    retries: outcome.retries,
    errorType: outcome.errorType,
    outputs: outcome.outputs,
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
  });
  if (pending.length >= flushAt) flush();
}

async function start(message: StartMessage): Promise<void> {
  flushAt = message.flushAt;
  const pipeline = await buildPipeline(message.pipeline);
  const node = pipeline.stage(message.stage);
  if (message.transport.kind !== "kafka") {
    throw new ConfigError(
      `Cannot run worker on transport "${message.transport.kind}": only "kafka" is shared`,
      { field: "transport.kind" },
    );
  }
  const options = message.transport.options ?? {};
  transport = await createBrokerTransport(message.transport.brokers, {
    ...options,
    clientId: `${options.clientId ?? "orders-pipeline"}-${message.worker}`,
  });
  producer = await transport.producer();
  if (message.telemetry !== undefined) {
    const env = Deno.env.toObject();
    await configureLogging({
      level: message.telemetry.logLevel ?? "info",
      otlp: env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ||
        env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT !== undefined,
    });
    telemetry = await setupTelemetry({
      serviceName: message.telemetry.serviceName,
      serviceVersion: message.telemetry.serviceVersion,
      instanceId: message.worker,
      mode: message.telemetry.parenting,
      prometheus: message.telemetry.prometheus,
    });
  }
  flushTimer = setInterval(flush, message.flushEveryMs);
  member = await startStageMember(node, {
    transport,
    producer,
    onOutcome: report,
    instrumentation: telemetry?.instrumentation,
    // Forwarded to the supervisor's readiness: "restoring" while the stage's state stores
    // restore from their changelogs, "consuming" once they are restored.
    onState(state, detail) {
      post({ type: "state", state, detail });
      if (state === "stopped") {
        // The client library stopped the consumer for good: the supervisor replaces the worker.
        post({
          type: "failed",
          // Retriable: a consumer stopped by the client library (a broker outage outlasting
          // its retries) is what a fresh worker recovers from, within the outage tolerance.
          error: {
            name: "ConsumerStoppedError",
            message: `Consumer stopped: ${detail}`,
            retriable: true,
          },
        });
        scope.close();
      }
    },
    guarantee: message.guarantee,
  });
  post({ type: "started" });
}

async function drain(): Promise<void> {
  // A member still starting is let finish, then closed: leaving mid-join would be undone.
  await starting?.catch(() => undefined);
  await member?.close();
  if (flushTimer !== undefined) clearInterval(flushTimer);
  flush();
  await producer?.close();
  await transport?.close();
  // Telemetry that cannot be delivered must not turn a clean drain into a crash.
  await telemetry?.shutdown().catch((error) =>
    console.error(`telemetry: final export failed in worker: ${error}`)
  );
  post({ type: "drained" });
  scope.close();
}

scope.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "start") {
    starting = start(message).catch((error) => {
      post({ type: "failed", error: toWorkerError(error) });
      scope.close();
    });
  } else if (message.type === "collect") {
    const scrape = telemetry?.scrape;
    (scrape === undefined ? Promise.resolve([]) : scrape()).then(
      (families) => post({ type: "metrics", id: message.id, families }),
      // A failed collection answers empty: one worker must not fail the whole scrape.
      () => post({ type: "metrics", id: message.id, families: [] }),
    );
  } else if (message.type === "drain") {
    drain().catch((error) => {
      post({ type: "failed", error: toWorkerError(error) });
      scope.close();
    });
  }
};

/**
 * `deno task pipeline`: generate orders, publish them, pay them, and account for every one.
 *
 * @module
 */
import { processingGuarantee } from "../pipeline/guarantee.ts";
import type { ProcessingGuarantee } from "../pipeline/guarantee.ts";
import { helpText, parseConfig } from "../pipeline/config.ts";
import type { ConfigValues } from "../pipeline/config.ts";
import type { Clock } from "../pipeline/clock.ts";
import { systemClock } from "../pipeline/clock.ts";
import { errorMessage, PipelineError } from "../pipeline/errors.ts";
import { createPublisher } from "../pipeline/publisher.ts";
import { pipelineLag, waitUntilDrained } from "../pipeline/run.ts";
import { startEngine } from "./engine.ts";
import type { Engine } from "./engine.ts";
import type { Transport } from "../pipeline/transport/transport.ts";
import { createEmbeddedTransport } from "../pipeline/transport/embedded/mod.ts";
import { ORDERS_CONFIG, retryPreset } from "./config.ts";
import type { OrderPlaced } from "./events.ts";
import { createOrderGenerator } from "./generate_order.ts";
import { PUBLISH_ORDER } from "./orders_pipeline.ts";
import { PROCESS_PAYMENT } from "./process_payment.ts";
import { SummaryCounter } from "./summary.ts";
import { startGatewayService } from "./gateway_service.ts";
import type { GatewayService } from "./gateway_service.ts";
import { ORDER_METRIC, SERVICE, SERVICE_VERSION } from "./telemetry.ts";
import { setupTelemetry } from "../pipeline/telemetry/mod.ts";
import type { ParentingMode, Telemetry } from "../pipeline/telemetry/mod.ts";
import type { LagSample } from "../pipeline/telemetry/metrics.ts";
import { LABEL, METRIC } from "../pipeline/telemetry/names.ts";
import { configureLogging, type LogFormat } from "../pipeline/log.ts";
import type { LogLevel } from "../pipeline/log.ts";
import type { RunSummary } from "./summary.ts";
import type { CommandIo } from "./command.ts";

/** The settings of a run. */
export type OrdersConfig = ConfigValues<typeof ORDERS_CONFIG>;

/** Where the command writes: results on stdout, progress on stderr. */
export type AppIo = CommandIo;

/** Options for {@linkcode runOrdersApp}. */
export interface RunOrdersAppOptions {
  /** Output streams. */
  readonly io: AppIo;
  /** Aborts the run: stop generating, drain, summarise. */
  readonly signal?: AbortSignal;
  /**
   * The transport; by default the embedded one, or kafka when `brokers` is set.
   */
  readonly transport?: Transport;
  /**
   * Time for retries.
   * @default systemClock
   */
  readonly clock?: Clock;
  /**
   * How often a progress line is printed, in ms.
   * @default 1000
   */
  readonly progressEveryMs?: number;
  /**
   * The environment `OTEL_*` settings are read from.
   * @default Deno.env.toObject()
   */
  readonly env?: Record<string, string | undefined>;
}

const USAGE = `Usage: deno task pipeline [options]

Runs the orders pipeline: generate orders -> publish to the orders topic -> consume in the
payment-service group -> process payment -> payments topic, with retries and a dead-letter
queue. Without KAFKA_BROKERS it runs on the embedded in-process transport.
Ends with one JSON line on stdout: {"summary":{...}}.`;

/** Parses arguments and environment; `undefined` when help was printed. */
export function parseOrdersConfig(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: AppIo,
): OrdersConfig | undefined {
  const parsed = parseConfig(ORDERS_CONFIG, { args, env });
  if (parsed.help) {
    io.stdout(helpText(ORDERS_CONFIG, USAGE));
    return undefined;
  }
  // Refused here, before a topic, a gateway or a worker is started.
  processingGuarantee(parsed.values.guarantee, {
    stage: { name: PROCESS_PAYMENT },
    retryTopics: retryPreset(parsed.values.retry).tiers.map((_, i) =>
      `${parsed.values.ordersTopic}.retry.${i + 1}`
    ),
  });
  return parsed.values;
}

async function openTransport(config: OrdersConfig): Promise<Transport> {
  if (config.brokers === undefined) return createEmbeddedTransport();
  // Imported here, not at the top: kafkajs reads the environment when it loads, and a run on
  // the embedded transport (the stage tests) needs no permission.
  const { createKafkaTransport } = await import("../pipeline/transport/kafka/mod.ts");
  return createKafkaTransport(config.brokers);
}

/**
 * Runs the orders pipeline until `maxOrders` are generated, `duration` passes or `signal`
 * aborts; then drains and resolves with the summary.
 */
export async function runOrdersApp(
  config: OrdersConfig,
  options: RunOrdersAppOptions,
): Promise<RunSummary> {
  const { io, signal, clock = systemClock, progressEveryMs = 1000 } = options;
  // A fresh seed per run unless one is given: order ids are derived from it, and on Kafka a
  // second run with the first's ids would find them all paid already.
  const seed = config.seed ?? crypto.getRandomValues(new Uint32Array(1))[0] >>> 1;

  const transport = options.transport ?? await openTransport(config);
  const cores = navigator.hardwareConcurrency ?? 2;
  const workers = config.workers ?? Math.min(config.partitions, cores);
  const env = options.env ?? Deno.env.toObject();
  await configureLogging({
    level: config.logLevel as LogLevel,
    // Workers read the same LOG_FORMAT and terminal, and so decide the same.
    format: config.logFormat === "auto" ? undefined : config.logFormat as LogFormat,
    otlp: env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ||
      env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT !== undefined,
  });
  const telemetry = await setupTelemetry({
    serviceName: SERVICE.ORDER,
    serviceVersion: SERVICE_VERSION,
    instanceId: `${SERVICE.ORDER}-${Deno.pid}`,
    env,
    mode: config.traceParenting as ParentingMode,
  });
  const instrumentation = telemetry.instrumentation;
  const counter = new SummaryCounter();
  // Stops generation early when a stage has no workers left: draining would never end.
  const failed = new AbortController();
  let failure: Error | undefined;
  const restarts = telemetry.metrics;
  const paymentWorkers = Math.min(workers, config.partitions);
  let engine: Engine;
  // Without GATEWAY_URL the gateway service runs here, on a loopback port: the payment stage
  // charges it over HTTP all the same, and its ledger counts the charges.
  let gateway: GatewayService | undefined;
  try {
    if (config.gatewayUrl === undefined) {
      gateway = await startGatewayService({
        failureRate: config.failureRate,
        timeoutRate: config.gatewayTimeoutRate,
        latencyMs: config.gatewayLatencyMs,
        seed,
      });
    }
    engine = await startEngine({
      transport,
      brokers: options.transport === undefined ? config.brokers : undefined,
      pipeline: {
        ordersTopic: config.ordersTopic,
        paymentsTopic: config.paymentsTopic,
        dlqTopic: config.dlqTopic,
        groupId: config.groupId,
        partitions: config.partitions,
        replicationFactor: config.replicationFactor,
        minInsyncReplicas: config.minInsyncReplicas,
        concurrency: paymentWorkers,
        retry: retryPreset(config.retry),
        stateRetentionMs: config.stateRetentionMs,
      },
      gateway: {
        url: config.gatewayUrl ?? gateway!.url,
        timeoutMs: config.gatewayTimeoutMs,
      },
      workers: paymentWorkers,
      guarantee: config.guarantee as ProcessingGuarantee,
      logLevel: config.logLevel as LogLevel,
      parenting: config.traceParenting as ParentingMode,
      clock,
      instrumentation,
      onOutcome: (outcome) => counter.record(outcome),
      onEvent: (event) => {
        if (event.type === "crash") {
          io.stderr(
            `worker ${event.worker} crashed: ${event.error.message}` +
              (event.restart
                ? `; restart ${event.restart.attempt} in ${event.restart.delayMs} ms`
                : ""),
          );
          if (event.restart) restarts.workerRestart(event.stage);
        } else if (event.type === "gave-up") {
          io.stderr(`worker ${event.worker} gave up after ${event.crashes} crashes`);
          failure = event.error;
          failed.abort(event.error);
        }
      },
    });
  } catch (error) {
    await gateway?.close();
    await transport.close();
    await telemetry.shutdown().catch((shutdownError) =>
      io.stderr(`telemetry: final export failed: ${errorMessage(shutdownError)}`)
    );
    throw error;
  }
  const { pipeline } = engine;
  io.stderr(
    `orders pipeline on ${transport.target}${
      config.brokers === undefined ? " (KAFKA_BROKERS is not set)" : ""
    }: payment stage in ${engine.description}, failure rate ${config.failureRate}, ` +
      `retry ${config.retry}, seed ${seed}, gateway ${
        gateway ? `${gateway.url} (in-process)` : config.gatewayUrl
      }${telemetry.mode === "off" ? "" : `, telemetry ${telemetry.mode}`}`,
  );
  // Every stage's restart series exists from the start, so the panel shows 0, not "no data".
  for (const node of pipeline.stages) {
    restarts.counter(METRIC.WORKER_RESTARTS).add(0, { [LABEL.STAGE]: node.stage.name });
  }
  const publisher = createPublisher<OrderPlaced>(pipeline, PUBLISH_ORDER, {
    producer: engine.producer,
    instrumentation,
  });
  const lag = watchLag(pipeline, transport, telemetry);
  // As the reference's counter did, orders_failed_total exists at 0 from the start: a healthy
  // run shows 0 publish failures, not "no data".
  telemetry.metrics.counter(ORDER_METRIC.ORDERS_FAILED).add(0);
  const progress = setInterval(() => io.stderr(counter.progressLine()), progressEveryMs);
  const stop = signal === undefined ? failed.signal : AbortSignal.any([signal, failed.signal]);
  try {
    await generate(config, counter, stop, (orders) => publishOrders(orders));
    if (failure) throw failure;
    const stopped = signal?.aborted === true;
    io.stderr(`generation stopped after ${counter.summary.generated} orders; draining`);
    try {
      await waitUntilDrained(pipeline, transport, {
        timeoutMs: (stopped ? config.stopGrace : config.drainTimeout) * 1000,
        signal: failed.signal,
      });
    } catch (error) {
      if (failure) throw failure;
      if (!stopped) throw error;
      if (config.brokers === undefined) {
        throw new PipelineError(
          `Cannot stop cleanly as ${counter.inFlight} published order(s) had no outcome after ` +
            `the stop grace of ${config.stopGrace} s and the embedded transport loses them ` +
            `with the process: raise --stop-grace, or run on Kafka (KAFKA_BROKERS)`,
          { cause: error, field: "--stop-grace" },
        );
      }
      // Asked to stop: what is published but not yet processed is safe on the broker, and the
      // group's committed offsets tell the next run where to continue.
      io.stderr(
        `stop grace of ${config.stopGrace} s passed with ${counter.inFlight} order(s) not yet ` +
          `processed; they stay on the broker for the next run of group "${config.groupId}"`,
      );
    }
  } finally {
    clearInterval(progress);
    lag.stop();
    await engine.stop(config.drainTimeout * 1000);
    await transport.close();
    io.stderr(counter.progressLine());
    if (gateway) {
      await gateway.close();
      const counts = gateway.handler.counts();
      io.stderr(
        `gateway ledger: ${counts.charges} charge(s) for ${counts.requests} request(s): ` +
          `${counts.replays} answered with an earlier charge, ${counts.unavailable} 503, ` +
          `${counts.timeouts} held past the timeout, ${counts.declined} declined`,
      );
    }
    // Telemetry that cannot be delivered is reported, never a reason to fail the run.
    await telemetry.shutdown().catch((error) =>
      io.stderr(`telemetry: final export failed: ${errorMessage(error)}`)
    );
  }
  return counter.summary;

  /**
   * Publishes a batch, retrying with backoff while the transport refuses it: a broker that is
   * down delays orders, it does not lose them. Gives up only when the run is aborted.
   */
  async function publishOrders(orders: OrderPlaced[]): Promise<boolean> {
    const published = telemetry.metrics.counter(ORDER_METRIC.ORDERS_PUBLISHED);
    const failed = telemetry.metrics.counter(ORDER_METRIC.ORDERS_FAILED);
    const latency = telemetry.metrics.histogram(ORDER_METRIC.ORDER_PUBLISH_LATENCY);
    for (let attempt = 1;; attempt++) {
      const started = performance.now();
      try {
        await publisher.publish(orders);
        const ms = performance.now() - started;
        for (let i = 0; i < orders.length; i++) latency.record(ms);
        published.add(orders.length);
        return true;
      } catch (error) {
        failed.add(orders.length, { error_type: (error as Error)?.constructor?.name ?? "Error" });
        const wait = Math.min(5000, 250 * 2 ** (attempt - 1));
        io.stderr(
          `publish of ${orders.length} orders failed (attempt ${attempt}), retrying in ${wait} ms: ${
            errorMessage(error)
          }`,
        );
        if (signal?.aborted) return false;
        // Only an abort ends this sleep early; the loop checks the signal next.
        await systemClock.sleep(wait, signal).catch(() => undefined);
        if (signal?.aborted) return false;
      }
    }
  }

  async function generate(
    config: OrdersConfig,
    counter: SummaryCounter,
    signal: AbortSignal | undefined,
    publish: (orders: OrderPlaced[]) => Promise<boolean>,
  ): Promise<void> {
    const next = createOrderGenerator({ seed, now: () => clock.now() });
    const started = performance.now();
    const limit = config.maxOrders ?? Number.POSITIVE_INFINITY;
    const until = config.duration === undefined
      ? Number.POSITIVE_INFINITY
      : started + config.duration * 1000;
    let lastLagCheck = 0;
    while (counter.summary.generated < limit && !signal?.aborted && performance.now() < until) {
      const elapsed = (performance.now() - started) / 1000;
      const due = config.rate === 0
        ? Number.POSITIVE_INFINITY
        : Math.floor(elapsed * config.rate) + 1;
      const batch = Math.min(
        500,
        limit - counter.summary.generated,
        due - counter.summary.generated,
      );
      if (batch <= 0) {
        // Only an abort ends this sleep early; the loop checks the signal next.
        await systemClock.sleep(Math.min(50, 1000 / config.rate), signal).catch(() => undefined);
        continue;
      }
      // Bound the backlog: generating far ahead of payment only grows memory and lag.
      if (performance.now() - lastLagCheck > 200 && counter.inFlight > 20_000) {
        lastLagCheck = performance.now();
        const lag = (await pipelineLag(pipeline, transport)).reduce((sum, l) => sum + l.lag, 0);
        if (lag > 20_000) {
          // Only an abort ends this sleep early; the loop checks the signal next.
          await systemClock.sleep(100, signal).catch(() => undefined);
          continue;
        }
      }
      const orders = Array.from({ length: batch }, next);
      counter.summary.generated += orders.length;
      if (await publish(orders)) counter.summary.published += orders.length;
    }
  }
}

/** Polls the pipeline's lag every few seconds and exposes it as the consumer lag gauge. */
function watchLag(
  pipeline: Parameters<typeof pipelineLag>[0],
  transport: Transport,
  telemetry: Telemetry,
): { stop(): void } {
  if (telemetry.mode === "off") return { stop() {} };
  let samples: LagSample[] = [];
  const unregister = telemetry.metrics.observeLag(() => samples);
  const poll = async () => {
    try {
      samples = (await pipelineLag(pipeline, transport)).flatMap((l) =>
        l.partitions.map((p) => ({
          topic: l.topic,
          partition: p.partition,
          group: l.group,
          lag: p.lag,
        }))
      );
    } catch {
      // A broker hiccup leaves the last samples in place; the next poll tries again.
    }
  };
  const timer = setInterval(poll, 5000);
  poll();
  return {
    stop() {
      clearInterval(timer);
      unregister();
    },
  };
}

/** The command's entry point: parses, runs, prints the summary; returns the exit code. */
export async function main(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: AppIo,
  signal?: AbortSignal,
): Promise<number> {
  let config: OrdersConfig | undefined;
  try {
    config = parseOrdersConfig(args, env, io);
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    return 2;
  }
  if (config === undefined) return 0;
  try {
    const summary = await runOrdersApp(config, { io, signal, env });
    io.stdout(JSON.stringify({ summary }));
    return 0;
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    if (!(error instanceof PipelineError)) io.stderr(String((error as Error)?.stack ?? ""));
    return 1;
  }
}

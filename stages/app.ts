/**
 * `deno task pipeline`: the all-in-one run for a first look. Generate orders, publish them,
 * pay them in the same process (its workers on Kafka), and account for every order consumed,
 * whoever published it.
 *
 * @module
 */
import type { ProcessingGuarantee } from "../pipeline/guarantee.ts";
import { helpText, parseConfig } from "../pipeline/config.ts";
import type { ConfigValues } from "../pipeline/config.ts";
import type { Clock } from "../pipeline/clock.ts";
import { systemClock } from "../pipeline/clock.ts";
import { errorMessage, PipelineError } from "../pipeline/errors.ts";
import { pipelineLag, waitUntilDrained } from "../pipeline/run.ts";
import { startService } from "../pipeline/service.ts";
import type { RunningService } from "../pipeline/service.ts";
import { healthEndpoint } from "../pipeline/service_config.ts";
import type { ParentingMode } from "../pipeline/telemetry/mod.ts";
import type { LogLevel } from "../pipeline/log.ts";
import type { Transport } from "../pipeline/transport/transport.ts";
import type { CommandIo } from "../pipeline/command.ts";
import { ORDERS_CONFIG } from "./config.ts";
import { createOrdersPipeline } from "./orders_pipeline.ts";
import { freshSeed, publishOrders } from "./_order_source.ts";
import {
  closeGateway,
  inProcessPipelineOptions,
  openGateway,
  paymentWorkers,
  printSummary,
  reportWorkerEvent,
  setupLogging,
  workerPipelineSpec,
} from "./_services.ts";
import { SummaryCounter } from "./summary.ts";
import type { RunSummary } from "./summary.ts";
import { SERVICE, SERVICE_VERSION } from "./telemetry.ts";
import { KAFKA_SECURITY_HELP } from "../pipeline/transport/kafka/security.ts";
import type { KafkaClientName } from "../pipeline/transport/kafka_client.ts";

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
   * The transport; the stage then runs in this process on it (the caller closes it).
   * @default the embedded one, or kafka workers when `brokers` is set
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

Runs the orders pipeline in one process: generate orders -> publish to the orders topic ->
consume in the payment-service group -> process payment -> payments topic, with retries and a
dead-letter queue. Without KAFKA_BROKERS it runs on the embedded in-process transport.
To run the two halves as services, see deno task orders and deno task payments.
Ends with one JSON line on stdout: {"summary":{...}}; "consumed" counts every order paid,
dead-lettered or skipped here, whoever published it.`;

/** Parses arguments and environment; `undefined` when help was printed. */
export function parseOrdersConfig(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: AppIo,
): OrdersConfig | undefined {
  const parsed = parseConfig(ORDERS_CONFIG, { args, env });
  if (parsed.help) {
    io.stdout(helpText(ORDERS_CONFIG, USAGE, { sections: [KAFKA_SECURITY_HELP] }));
    return undefined;
  }
  return parsed.values;
}

/** The service's lag right now, or `undefined` when the broker does not answer. */
async function lagNow(service: RunningService): Promise<number | undefined> {
  try {
    const lags = await pipelineLag(service.pipeline, service.transport);
    return lags.reduce((sum, l) => sum + l.lag, 0);
  } catch {
    return undefined;
  }
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
  const seed = config.seed ?? freshSeed();
  const env = options.env ?? Deno.env.toObject();
  await setupLogging(config, env);
  const workers = paymentWorkers(config);
  const counter = new SummaryCounter("pipeline");
  // Without GATEWAY_URL the gateway service runs here, on a loopback port: the payment stage
  // charges it over HTTP all the same, and its ledger counts the charges.
  const gateway = await openGateway(config, seed);
  let service: RunningService;
  try {
    service = await startService({
      pipeline: workerPipelineSpec(config, { concurrency: workers, gateway: gateway.settings }),
      build: () =>
        createOrdersPipeline(
          inProcessPipelineOptions(config, { concurrency: workers, gateway: gateway.settings }),
        ),
      brokers: options.transport === undefined ? config.brokers : undefined,
      kafkaClient: config.kafkaClient as KafkaClientName,
      transport: options.transport,
      workers,
      serviceName: SERVICE.ORDER,
      workerServiceName: SERVICE.PAYMENT,
      serviceVersion: SERVICE_VERSION,
      env,
      health: healthEndpoint(config),
      guarantee: config.guarantee as ProcessingGuarantee,
      parenting: config.traceParenting as ParentingMode,
      logLevel: config.logLevel as LogLevel,
      clock,
      pollMs: 1000,
      onOutcome: (outcome) => counter.record(outcome),
      onEvent: (event) => reportWorkerEvent(io, event),
    });
  } catch (error) {
    await gateway.local?.close();
    throw error;
  }
  const { telemetry } = service;
  io.stderr(
    `orders pipeline on ${service.transport.target}${
      config.brokers === undefined ? " (KAFKA_BROKERS is not set)" : ""
    }: payment stage in ${service.description}, failure rate ${config.failureRate}, ` +
      `retry ${config.retry}, seed ${seed}, gateway ${gateway.description}${
        telemetry.mode === "off" ? "" : `, telemetry ${telemetry.mode}`
      }${service.health === undefined ? "" : `, health on ${service.health.url}`}`,
  );
  const progress = setInterval(() => {
    counter.backlog = service.lag();
    io.stderr(counter.progressLine());
  }, progressEveryMs);
  const stop = signal === undefined ? service.failed : AbortSignal.any([signal, service.failed]);
  try {
    await publishOrders(service, { ...config, seed, counter, io, signal: stop, clock });
    if (service.failed.aborted) throw service.failed.reason;
    const stopped = signal?.aborted === true;
    io.stderr(`generation stopped after ${counter.summary.generated} orders; draining`);
    try {
      await waitUntilDrained(service.pipeline, service.transport, {
        timeoutMs: (stopped ? config.stopGrace : config.drainTimeout) * 1000,
        signal: service.failed,
      });
    } catch (error) {
      if (service.failed.aborted) throw service.failed.reason;
      if (!stopped) throw error;
      const left = await lagNow(service);
      if (config.brokers === undefined) {
        throw new PipelineError(
          `Cannot stop cleanly as ${left ?? "some"} published order(s) had no outcome after ` +
            `the stop grace of ${config.stopGrace} s and the embedded transport loses them ` +
            `with the process: raise --stop-grace, or run on Kafka (KAFKA_BROKERS)`,
          { cause: error, field: "--stop-grace" },
        );
      }
      // Asked to stop: what is published but not yet processed is safe on the broker, and the
      // group's committed offsets tell the next run where to continue.
      io.stderr(
        `stop grace of ${config.stopGrace} s passed with ${left ?? "some"} order(s) not yet ` +
          `processed; they stay on the broker for the next run of group "${config.groupId}"`,
      );
    }
  } finally {
    clearInterval(progress);
    counter.backlog = await lagNow(service);
    // Telemetry that cannot be delivered is reported, never a reason to fail the run.
    await service.stop(config.drainTimeout * 1000).catch((error) =>
      io.stderr(`cannot shut down cleanly: ${errorMessage(error)}`)
    );
    io.stderr(counter.progressLine());
    await closeGateway(gateway, io);
  }
  return counter.summary;
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
  return await printSummary(io, () => runOrdersApp(config, { io, signal, env }));
}

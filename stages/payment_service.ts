/**
 * `deno task payments`, the Payment Service: consumes `orders` in the `payment-service` group
 * with N workers until SIGTERM, pays each order (retries, DLQ) and counts every order it
 * consumed, whoever published it. Many processes on many hosts form one group: a process that
 * dies leaves its partitions to the others after the session timeout. On SIGTERM it drains
 * (stop fetching, finish, commit, leave) within `--stop-grace`, prints its summary, exits 0.
 *
 * @module
 */
import { helpText, parseConfig } from "../pipeline/config.ts";
import type { ConfigValues } from "../pipeline/config.ts";
import { errorMessage } from "../pipeline/errors.ts";
import type { LogLevel } from "../pipeline/log.ts";
import { startService } from "../pipeline/service.ts";
import type { RunningService } from "../pipeline/service.ts";
import { healthEndpoint } from "../pipeline/service_config.ts";
import type { ParentingMode } from "../pipeline/telemetry/mod.ts";
import type { CommandIo } from "../pipeline/command.ts";
import { runCommand } from "../pipeline/command.ts";
import { PAYMENTS_CONFIG } from "./config.ts";
import type { ProcessingGuarantee } from "../pipeline/guarantee.ts";
import { createOrdersPipeline } from "./orders_pipeline.ts";
import { freshSeed } from "./_order_source.ts";
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
import type { RunGateway } from "./_services.ts";
import { SummaryCounter } from "./summary.ts";
import type { RunSummary } from "./summary.ts";
import { SERVICE, SERVICE_VERSION } from "./telemetry.ts";
import { KAFKA_SECURITY_HELP } from "../pipeline/transport/kafka/security.ts";
import type { KafkaClientName } from "../pipeline/transport/kafka_client.ts";

/** The settings of the Payment Service. */
export type PaymentsConfig = ConfigValues<typeof PAYMENTS_CONFIG>;

const USAGE = `Usage: deno task payments [options]

The Payment Service: consumes the orders topic in the payment-service group with N workers
(consumer group members) until SIGINT/SIGTERM, processes each payment with retries and a
dead-letter queue, and writes PaymentProcessed events. Start it on as many hosts as you like:
they share the partitions. Without KAFKA_BROKERS it runs on the embedded transport (useful
only with HEALTH_PORT, for a look at the probes).
Ends with one JSON line on stdout: {"summary":{...}} counting what it consumed.`;

/** Options for {@linkcode runPaymentService}. */
export interface RunPaymentServiceOptions {
  /** Output streams. */
  readonly io: CommandIo;
  /** Stops the service: drain, summarise. */
  readonly signal: AbortSignal;
  /**
   * The environment `OTEL_*` settings are read from.
   * @default Deno.env.toObject()
   */
  readonly env?: Record<string, string | undefined>;
  /**
   * How often a progress line is printed, in ms.
   * @default 1000
   */
  readonly progressEveryMs?: number;
}

/**
 * Runs the Payment Service until `signal` aborts, then drains and resolves with what it
 * consumed.
 *
 * @throws {PipelineError} when the stage is left without workers (the supervisor gave up)
 */
export async function runPaymentService(
  config: PaymentsConfig,
  options: RunPaymentServiceOptions,
): Promise<RunSummary> {
  const { io, signal, progressEveryMs = 1000 } = options;
  const env = options.env ?? Deno.env.toObject();
  await setupLogging(config, env);
  const seed = config.seed ?? freshSeed();
  const workers = paymentWorkers(config);
  const counter = new SummaryCounter("payments");
  // Without GATEWAY_URL the gateway service runs here, on a loopback port.
  const gateway: RunGateway = await openGateway(config, seed);
  let service: RunningService;
  try {
    service = await startService({
      pipeline: workerPipelineSpec(config, { concurrency: workers, gateway: gateway.settings }),
      build: () =>
        createOrdersPipeline(
          inProcessPipelineOptions(config, { concurrency: workers, gateway: gateway.settings }),
        ),
      brokers: config.brokers,
      kafkaClient: config.kafkaClient as KafkaClientName,
      guarantee: config.guarantee as ProcessingGuarantee,
      workers,
      serviceName: SERVICE.PAYMENT,
      serviceVersion: SERVICE_VERSION,
      env,
      health: healthEndpoint(config),
      parenting: config.traceParenting as ParentingMode,
      logLevel: config.logLevel as LogLevel,
      pollMs: 1000,
      onOutcome: (outcome) => counter.record(outcome),
      onEvent: (event) => reportWorkerEvent(io, event),
    });
  } catch (error) {
    await gateway.local?.close();
    throw error;
  }
  io.stderr(
    `payment service on ${service.transport.target}: group "${config.groupId}" on ` +
      `"${config.ordersTopic}", ${service.description}, failure rate ${config.failureRate}, ` +
      `retry ${config.retry}, gateway ${gateway.description}${
        service.health === undefined ? "" : `, health on ${service.health.url}`
      }`,
  );
  const progress = setInterval(() => {
    counter.backlog = service.lag();
    io.stderr(counter.progressLine());
  }, progressEveryMs);
  try {
    const stop = AbortSignal.any([signal, service.failed]);
    await new Promise<void>((resolve) => {
      if (stop.aborted) resolve();
      stop.addEventListener("abort", () => resolve(), { once: true });
    });
    if (service.failed.aborted) throw service.failed.reason;
  } finally {
    clearInterval(progress);
    counter.backlog = service.lag();
    await service.stop(config.stopGrace * 1000);
    io.stderr(counter.progressLine());
    await closeGateway(gateway, io);
  }
  return counter.summary;
}

/** The command's entry point: parses, runs until stopped, prints the summary. */
export async function main(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: CommandIo,
  signal: AbortSignal,
): Promise<number> {
  let config: PaymentsConfig;
  try {
    const parsed = parseConfig(PAYMENTS_CONFIG, { args, env });
    if (parsed.help) {
      io.stdout(helpText(PAYMENTS_CONFIG, USAGE, { sections: [KAFKA_SECURITY_HELP] }));
      return 0;
    }
    config = parsed.values;
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    return 2;
  }
  return await printSummary(io, () => runPaymentService(config, { io, signal, env }));
}

if (import.meta.main) {
  await runCommand(main, "draining: finishing records, committing, leaving the group");
}

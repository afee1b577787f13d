/**
 * `deno task orders`, the Order Service: generates orders at `--rate` and publishes them to
 * `orders` with an idempotent producer (acks=all) until SIGINT/SIGTERM, `--max-orders` or
 * `--duration`, then prints its summary. It consumes nothing: payments are the Payment
 * Service's (`deno task payments`).
 *
 * @module
 */
import { helpText, parseConfig } from "../pipeline/config.ts";
import type { ConfigValues } from "../pipeline/config.ts";
import { errorMessage } from "../pipeline/errors.ts";
import { startService } from "../pipeline/service.ts";
import { healthEndpoint } from "../pipeline/service_config.ts";
import type { ParentingMode } from "../pipeline/telemetry/mod.ts";
import type { CommandIo } from "../pipeline/command.ts";
import { runCommand } from "../pipeline/command.ts";
import { ORDER_SERVICE_CONFIG } from "./config.ts";
import { createOrdersPipeline } from "./orders_pipeline.ts";
import { createPaymentGateway } from "./payment_gateway.ts";
import { freshSeed, publishOrders } from "./_order_source.ts";
import { pipelineOptions, printSummary, setupLogging, workerPipelineSpec } from "./_services.ts";
import { SummaryCounter } from "./summary.ts";
import type { RunSummary } from "./summary.ts";
import { SERVICE, SERVICE_VERSION } from "./telemetry.ts";
import { KAFKA_SECURITY_HELP } from "../pipeline/transport/kafka/security.ts";
import type { KafkaClientName } from "../pipeline/transport/kafka_client.ts";

/** The settings of the Order Service. */
export type OrderServiceConfig = ConfigValues<typeof ORDER_SERVICE_CONFIG>;

const USAGE = `Usage: deno task orders [options]

The Order Service: generates orders at --rate and publishes them to the orders topic (keyed by
order_id, idempotent producer, acks=all) until SIGINT/SIGTERM, --max-orders or --duration.
Payments are made by deno task payments. Without KAFKA_BROKERS it publishes to the embedded
transport, which nobody else can read.
Ends with one JSON line on stdout: {"summary":{...}}.`;

/** Options for {@linkcode runOrderService}. */
export interface RunOrderServiceOptions {
  /** Output streams. */
  readonly io: CommandIo;
  /** Stops publishing. */
  readonly signal?: AbortSignal;
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

/** Publishes orders until a limit or `signal`; resolves with the counts. */
export async function runOrderService(
  config: OrderServiceConfig,
  options: RunOrderServiceOptions,
): Promise<RunSummary> {
  const { io, signal, progressEveryMs = 1000 } = options;
  const env = options.env ?? Deno.env.toObject();
  await setupLogging(config, env);
  const seed = config.seed ?? freshSeed();
  const settings = { ...config, groupId: "payment-service", retry: "backoff" };
  const counter = new SummaryCounter("orders");
  const service = await startService({
    // The pipeline gives the topics and the publishing source; nothing is consumed here.
    pipeline: workerPipelineSpec(settings, { concurrency: 1 }),
    build: () =>
      createOrdersPipeline({ ...pipelineOptions(settings, 1), gateway: createPaymentGateway() }),
    brokers: config.brokers,
    kafkaClient: config.kafkaClient as KafkaClientName,
    consume: false,
    serviceName: SERVICE.ORDER,
    serviceVersion: SERVICE_VERSION,
    env,
    health: healthEndpoint(config),
    parenting: config.traceParenting as ParentingMode,
  });
  io.stderr(
    `order service on ${service.transport.target}${
      config.brokers === undefined ? " (KAFKA_BROKERS is not set)" : ""
    }: publishing to "${config.ordersTopic}" at ${
      config.rate === 0 ? "full speed" : `${config.rate}/s`
    }, seed ${seed}${service.health === undefined ? "" : `, health on ${service.health.url}`}`,
  );
  const progress = setInterval(() => io.stderr(counter.progressLine()), progressEveryMs);
  const stop = signal === undefined ? service.failed : AbortSignal.any([signal, service.failed]);
  try {
    await publishOrders(service, { ...config, seed, counter, io, signal: stop });
  } finally {
    clearInterval(progress);
    await service.stop();
    io.stderr(counter.progressLine());
  }
  return counter.summary;
}

/** The command's entry point: parses, publishes, prints the summary. */
export async function main(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: CommandIo,
  signal?: AbortSignal,
): Promise<number> {
  let config: OrderServiceConfig;
  try {
    const parsed = parseConfig(ORDER_SERVICE_CONFIG, { args, env });
    if (parsed.help) {
      io.stdout(helpText(ORDER_SERVICE_CONFIG, USAGE, { sections: [KAFKA_SECURITY_HELP] }));
      return 0;
    }
    config = parsed.values;
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    return 2;
  }
  return await printSummary(io, () => runOrderService(config, { io, signal, env }));
}

if (import.meta.main) {
  await runCommand(main, "stopping publication");
}

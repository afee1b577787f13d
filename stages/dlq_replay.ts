/**
 * `deno task dlq:replay`: sends the orders pipeline's dead-lettered records back to their
 * original topic, with their original key, value and headers plus `x-replayed-from`. The
 * semantics (one cursor per group, bounded by the DLQ's end offsets at the start, truncated and
 * invalid envelopes skipped) are those of {@linkcode replayDeadLetters}.
 *
 * Output: in a dry run one line per record that would be replayed (stdout); a progress line
 * about once a second and one line per truncated or invalid envelope (stderr); and last, one
 * JSON line `{"replay":{...report}}` on stdout.
 *
 * Exit codes: 0 done (also when nothing was left to replay); 1 the replay failed (broker,
 * missing topic, send); 2 bad arguments, or no `KAFKA_BROKERS`: the embedded transport lives
 * inside one process, so no DLQ survives a `deno task pipeline` run and there is nothing to
 * replay. A script that runs the replay without a broker is misconfigured, so it fails
 * instead of reporting a replay that never looked at anything.
 *
 * @module
 */
import { helpText, parseConfig, setting } from "../pipeline/config.ts";
import type { ConfigValues } from "../pipeline/config.ts";
import { errorMessage, PipelineError } from "../pipeline/errors.ts";
import { replayDeadLetters } from "../pipeline/replay.ts";
import type { ReplayProgress, ReplayReport } from "../pipeline/replay.ts";
import { setupTelemetry } from "../pipeline/telemetry/mod.ts";
import type { Transport } from "../pipeline/transport/transport.ts";
import { createBrokerTransport } from "../pipeline/transport/broker.ts";
import { parseKafkaClient } from "../pipeline/transport/kafka_client.ts";
import { ORDERS_CONFIG } from "./config.ts";
import { createOrdersPipeline } from "./orders_pipeline.ts";
import { createPaymentGateway } from "./payment_gateway.ts";
import { runCommand } from "./command.ts";
import type { CommandIo } from "./command.ts";
import { KAFKA_SECURITY_HELP } from "../pipeline/transport/kafka/security.ts";

/** The service name of the replay's spans (overridable by `OTEL_SERVICE_NAME`). */
export const REPLAY_SERVICE = "dlq-replay";

/** Every setting of `deno task dlq:replay`. */
export const REPLAY_CONFIG = {
  brokers: ORDERS_CONFIG.brokers,
  kafkaClient: ORDERS_CONFIG.kafkaClient,
  ordersTopic: ORDERS_CONFIG.ordersTopic,
  dlqTopic: setting({
    type: "string",
    env: "DLQ_TOPIC",
    flag: "dlq-topic",
    default: "orders.dlq",
    description: "Dead-letter topic to replay",
  }),
  group: setting({
    type: "string",
    flag: "group",
    description:
      "Consumer group marking the DLQ records already looked at (default <dlq>.replay); use another group to look again with another filter",
  }),
  errorType: setting({
    type: "string",
    flag: "filter-error-type",
    description: "Replay only envelopes with this error_type, e.g. RetryableError",
  }),
  stage: setting({
    type: "string",
    flag: "filter-stage",
    description: "Replay only envelopes of this stage, e.g. process-payment",
  }),
  limit: setting({
    type: "integer",
    flag: "limit",
    min: 0,
    description: "Replay at most this many records; unset replays all",
  }),
  dryRun: setting({
    type: "boolean",
    flag: "dry-run",
    default: false,
    description: "Print what would be replayed; send nothing, commit nothing",
  }),
  rate: setting({
    type: "number",
    flag: "rate",
    default: 100,
    min: 0.01,
    description: "Records sent per second at most",
  }),
  idleTimeout: setting({
    type: "number",
    flag: "idle-timeout",
    default: 10,
    min: 0.1,
    description: "Stop when no DLQ record arrived for this many seconds",
  }),
} as const;

/** The settings of a replay. */
export type ReplayConfig = ConfigValues<typeof REPLAY_CONFIG>;

/** Where the command writes: results on stdout, progress on stderr. */
export type ReplayIo = CommandIo;

/** Options for {@linkcode runReplay}. */
export interface RunReplayOptions {
  /** Output streams. */
  readonly io: ReplayIo;
  /** The transport; by default kafka at `brokers`. */
  readonly transport?: Transport;
  /** Stops the replay: records in flight finish, the report is printed. */
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

const USAGE = `Usage: deno task dlq:replay [options]

Sends dead-lettered records back to their original topic with their original key, value and
headers (plus x-replayed-from: <dlq>/<partition>/<offset>), in the trace they came from.
Reads the DLQ as a consumer group (default <dlq>.replay) whose committed offsets mark what was
looked at: a second run continues where the last one stopped, and a group never replays a
record it has committed (a crash mid-run may replay the last few records again). Records a
filter skips are marked looked at in that group too; replay them later with another
--group. Stops at the DLQ's end offsets as of the start. Truncated and invalid envelopes are
skipped with where the original is. Needs KAFKA_BROKERS (the embedded transport keeps no DLQ
between runs). Ends with one JSON line on stdout: {"replay":{...}}.`;

/** The message, and exit code 2, when no broker is configured. */
export const NO_BROKER_MESSAGE =
  "Cannot replay the DLQ as KAFKA_BROKERS is not set: without a broker the pipeline runs on " +
  "the embedded in-process transport, whose topics (the DLQ included) end with the process, " +
  "so there is nothing to replay; set KAFKA_BROKERS to the broker the pipeline used";

function position(p: { partition: number; offset: number }, topic: string): string {
  return `${topic}/${p.partition}/${p.offset}`;
}

function describeProgress(progress: ReplayProgress): string {
  const { envelope: e, dlq } = progress;
  const from = position(dlq, dlq.topic);
  if (e === undefined) return `${from}: ${progress.reason ?? progress.outcome}`;
  const key = e.key === null ? "null" : e.key_encoding === "utf8" ? `"${e.key}"` : "(binary)";
  return `${from} -> ${e.original_topic} key ${key} (error ${e.error_type}, stage "${e.stage}", ` +
    `attempts ${e.attempts}, failed at ${e.failed_at})`;
}

/**
 * The topics the orders pipeline's stages read: the only ones a replay may send to (the stage
 * inputs; retry tiers are the runtime's own).
 */
export function pipelineInputs(config: Pick<ReplayConfig, "ordersTopic">): string[] {
  const pipeline = createOrdersPipeline({
    gateway: createPaymentGateway(),
    ordersTopic: config.ordersTopic,
  });
  return pipeline.stages.map((node) => node.input);
}

/** Runs a replay with the parsed settings and resolves with its report. */
export async function runReplay(
  config: ReplayConfig,
  options: RunReplayOptions,
): Promise<ReplayReport> {
  const { io, signal, env = Deno.env.toObject(), progressEveryMs = 1000 } = options;
  let transport = options.transport;
  if (transport === undefined) {
    if (config.brokers === undefined) throw new PipelineError(NO_BROKER_MESSAGE);
    transport = await createBrokerTransport(config.brokers, {
      clientId: REPLAY_SERVICE,
      client: parseKafkaClient(config.kafkaClient),
    });
  }
  const telemetry = await setupTelemetry({ serviceName: REPLAY_SERVICE, env });
  if (telemetry.mode !== "off") io.stderr(`telemetry: ${telemetry.mode} export`);
  io.stderr(
    `replay: ${config.dryRun ? "dry run of " : ""}${config.dlqTopic} on ${transport.target}` +
      `, group ${config.group ?? `${config.dlqTopic}.replay`}` +
      (config.errorType ? `, error type ${config.errorType}` : "") +
      (config.stage ? `, stage ${config.stage}` : "") +
      (config.limit !== undefined ? `, limit ${config.limit}` : "") +
      `, at most ${config.rate}/s`,
  );
  let latest: ReplayReport | undefined;
  const timer = setInterval(() => {
    if (latest === undefined) return;
    const { examined, replayed, skipped } = latest;
    io.stderr(
      `replay: examined ${examined}, ${config.dryRun ? "would replay" : "replayed"} ${replayed}, ` +
        `skipped ${skipped.filter} filtered, ${skipped.truncated} truncated, ` +
        `${skipped.invalid} invalid, ${skipped.refused} refused`,
    );
  }, progressEveryMs);
  try {
    return await replayDeadLetters(transport, {
      dlqTopic: config.dlqTopic,
      replayTo: pipelineInputs(config),
      group: config.group,
      errorType: config.errorType,
      stage: config.stage,
      limit: config.limit,
      dryRun: config.dryRun,
      ratePerSecond: config.rate,
      idleTimeoutMs: config.idleTimeout * 1000,
      instrumentation: telemetry.instrumentation,
      signal,
      onProgress(progress) {
        latest = progress.report;
        if (progress.outcome === "would-replay") {
          io.stdout(`would replay ${describeProgress(progress)}`);
        } else if (progress.outcome === "truncated" || progress.outcome === "invalid") {
          io.stderr(`skipped ${describeProgress(progress)}: ${progress.reason}`);
        } else if (progress.outcome === "refused") {
          io.stderr(`error: ${progress.reason}`);
        }
      },
    });
  } finally {
    clearInterval(timer);
    if (options.transport === undefined) await transport.close();
    await telemetry.shutdown().catch((error) =>
      io.stderr(`telemetry shutdown failed: ${errorMessage(error)}`)
    );
  }
}

/** The command's entry point: parses, replays, prints the report; returns the exit code. */
export async function main(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: ReplayIo,
  signal?: AbortSignal,
  transport?: Transport,
): Promise<number> {
  let config: ReplayConfig;
  try {
    const parsed = parseConfig(REPLAY_CONFIG, { args, env });
    if (parsed.help) {
      io.stdout(helpText(REPLAY_CONFIG, USAGE, { sections: [KAFKA_SECURITY_HELP] }));
      return 0;
    }
    config = parsed.values;
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    return 2;
  }
  if (transport === undefined && config.brokers === undefined) {
    io.stderr(`error: ${NO_BROKER_MESSAGE}`);
    return 2;
  }
  try {
    const report = await runReplay(config, { io, signal, env, transport });
    io.stdout(JSON.stringify({ replay: report }));
    return 0;
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    if (!(error instanceof PipelineError)) io.stderr(String((error as Error)?.stack ?? ""));
    return 1;
  }
}

if (import.meta.main) {
  await runCommand(main, "finishing the records in flight");
}

/**
 * `deno task gateway`: the payment gateway service on its own, for pipelines on many hosts to
 * share (point them at it with `GATEWAY_URL`). Its settings are one spec, which `--help` and
 * the README print.
 *
 * @module
 */
import { helpText, parseConfig, setting } from "../pipeline/config.ts";
import type { ConfigValues } from "../pipeline/config.ts";
import { errorMessage } from "../pipeline/errors.ts";
import { runCommand } from "./command.ts";
import type { CommandIo } from "./command.ts";
import { GATEWAY_PATH, startGatewayService } from "./gateway_service.ts";

/** Every setting of `deno task gateway`. */
export const GATEWAY_CONFIG = {
  port: setting({
    type: "integer",
    env: "GATEWAY_PORT",
    flag: "port",
    default: 8085,
    min: 0,
    max: 65535,
    description: "Port the gateway listens on; 0 picks a free one",
  }),
  host: setting({
    type: "string",
    env: "GATEWAY_HOST",
    flag: "host",
    default: "127.0.0.1",
    description: "Address the gateway binds; loopback unless set",
  }),
  failureRate: setting({
    type: "number",
    env: "GATEWAY_FAILURE_RATE",
    flag: "failure-rate",
    default: 0.2,
    min: 0,
    max: 1,
    description: "Probability that one charge request is answered 503 (nothing charged)",
  }),
  timeoutRate: setting({
    type: "number",
    env: "GATEWAY_TIMEOUT_RATE",
    flag: "timeout-rate",
    default: 0,
    min: 0,
    max: 1,
    description:
      "Probability that one charge request is charged but answered only after --hold-ms (past the caller's timeout)",
  }),
  holdMs: setting({
    type: "integer",
    env: "GATEWAY_HOLD_MS",
    flag: "hold-ms",
    default: 30_000,
    min: 0,
    description: "How long a timed-out request is held before its late answer, in milliseconds",
  }),
  latencyMs: setting({
    type: "integer",
    env: "GATEWAY_LATENCY_MS",
    flag: "latency-ms",
    default: 0,
    min: 0,
    max: 60_000,
    description: "Latency of every charge request, in milliseconds",
  }),
  declineAbove: setting({
    type: "number",
    env: "GATEWAY_DECLINE_ABOVE",
    flag: "decline-above",
    min: 0,
    description: "Charges above this amount are declined with 402; unset declines none",
  }),
  keyTtlHours: setting({
    type: "number",
    env: "GATEWAY_KEY_TTL_HOURS",
    flag: "key-ttl-hours",
    default: 24,
    min: 0,
    description: "How long an idempotency key is kept after its first request, in hours",
  }),
  seed: setting({
    type: "integer",
    env: "GATEWAY_SEED",
    flag: "seed",
    default: 1,
    min: 0,
    max: 2 ** 31 - 1,
    description: "Seed of the failure and timeout draws (equal seeds, equal answers)",
  }),
} as const;

/** The settings of `deno task gateway`. */
export type GatewayConfig = ConfigValues<typeof GATEWAY_CONFIG>;

const USAGE = `Usage: deno task gateway [options]

Serves a payment gateway over HTTP, as real ones behave: idempotency keys kept across callers
(a repeated key returns the first charge), 503s, timeouts, latency, and a ledger of the charges
per key. Routes: POST ${GATEWAY_PATH.CHARGES} (Idempotency-Key header), GET ${GATEWAY_PATH.LEDGER},
GET ${GATEWAY_PATH.LEDGER}/<key>, GET ${GATEWAY_PATH.LIVEZ}.`;

/** The command's entry point: serves until `signal` aborts; returns the exit code. */
export async function main(
  args: readonly string[],
  env: Record<string, string | undefined>,
  io: CommandIo,
  signal: AbortSignal,
): Promise<number> {
  let config: GatewayConfig;
  try {
    const parsed = parseConfig(GATEWAY_CONFIG, { args, env });
    if (parsed.help) {
      io.stdout(helpText(GATEWAY_CONFIG, USAGE));
      return 0;
    }
    config = parsed.values;
  } catch (error) {
    io.stderr(`error: ${errorMessage(error)}`);
    return 2;
  }
  let service;
  try {
    service = await startGatewayService({
      port: config.port,
      hostname: config.host,
      failureRate: config.failureRate,
      timeoutRate: config.timeoutRate,
      holdMs: config.holdMs,
      latencyMs: config.latencyMs,
      declineAbove: config.declineAbove,
      keyTtlMs: config.keyTtlHours * 3600 * 1000,
      seed: config.seed,
    });
  } catch (error) {
    io.stderr(
      `error: Cannot start the gateway on ${config.host}:${config.port}: ${errorMessage(error)}`,
    );
    return 1;
  }
  io.stderr(
    `payment gateway on ${service.url}: failure rate ${config.failureRate}, timeout rate ` +
      `${config.timeoutRate}, latency ${config.latencyMs} ms, keys kept ${config.keyTtlHours} h, ` +
      `seed ${config.seed}`,
  );
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
  await service.close();
  io.stdout(JSON.stringify({ gateway: service.handler.counts() }));
  return 0;
}

if (import.meta.main) {
  await runCommand(main, "stopping the gateway");
}

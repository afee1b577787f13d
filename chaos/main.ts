/**
 * `deno task chaos`: the fault suite on a real broker. Prints progress on stderr, the table of
 * what it did and found on stdout, and exits 1 when any guarantee was broken (2 when the suite
 * itself could not run).
 *
 * @module
 */
import { helpText, parseConfig, setting } from "../pipeline/config.ts";
import type { ConfigValues } from "../pipeline/config.ts";
import { errorMessage } from "../pipeline/errors.ts";
import { renderReport } from "./report.ts";
import { runChaos } from "./suite.ts";
import { GUARANTEES } from "./verify.ts";
import type { Guarantee } from "./verify.ts";

/** Every setting of `deno task chaos`. */
export const CHAOS_CONFIG = {
  brokers: setting({
    type: "string",
    env: "KAFKA_BROKERS",
    description:
      "Use these brokers instead of starting a local one (the broker restart is then not available)",
  }),
  orders: setting({
    type: "integer",
    flag: "orders",
    default: 20_000,
    min: 10,
    description: "Orders published per guarantee",
  }),
  rate: setting({
    type: "number",
    flag: "rate",
    default: 200,
    min: 0.001,
    description: "Orders published per second, a fixed rate",
  }),
  workers: setting({
    type: "integer",
    flag: "workers",
    default: 2,
    min: 2,
    description: "Payment workers (consumer group members) in total",
  }),
  processes: setting({
    type: "integer",
    flag: "processes",
    default: 2,
    min: 1,
    description: "Payment service processes the workers are spread over (a SIGKILL takes down one)",
  }),
  kills: setting({
    type: "integer",
    flag: "kills",
    default: 10,
    min: 0,
    description: "SIGKILLs of payment service processes per guarantee (each restarted)",
  }),
  brokerRestarts: setting({
    type: "integer",
    flag: "broker-restarts",
    default: 1,
    min: 0,
    description: "Broker SIGKILLs and restarts per guarantee (own broker only)",
  }),
  guarantee: setting({
    type: "string",
    flag: "guarantee",
    default: "both",
    choices: [...GUARANTEES, "both"],
    description: "Processing guarantee(s) to run the services under, one after the other",
  }),
  seed: setting({
    type: "integer",
    flag: "seed",
    min: 0,
    max: 2 ** 31 - 1,
    description: "Seed of orders, poison, schedule and victims; default a fresh one, printed",
  }),
  partitions: setting({
    type: "integer",
    flag: "partitions",
    default: 6,
    min: 1,
    description: "Partitions of the input topic",
  }),
  failureRate: setting({
    type: "number",
    flag: "failure-rate",
    default: 0.2,
    min: 0,
    max: 0.99,
    description: "Probability that one gateway charge request answers 503",
  }),
  drainTimeout: setting({
    type: "number",
    flag: "drain-timeout",
    default: 240,
    min: 1,
    description: "Seconds the services may take to finish after the last order is published",
  }),
  report: setting({
    type: "string",
    flag: "report",
    description: "Also write the table to this file",
  }),
} as const;

/** The settings of `deno task chaos`. */
export type ChaosConfig = ConfigValues<typeof CHAOS_CONFIG>;

const USAGE = `Usage: deno task chaos [options]

The fault suite: publishes orders at a fixed rate (kcat) to the payment service's processes on
a real broker while it SIGKILLs them, kills and restarts the broker, adds and removes group
members and writes every poison kind; then checks with outside witnesses (kcat reading the
broker, the gateway's ledger, the group's committed offsets) that every order was charged once
and has exactly one outcome, every poison record is dead-lettered with its reason, and nothing
is stuck. Prints a table; exits 1 on any violation, 2 when the suite cannot run.`;

/** The command: parses, runs, prints; returns the exit code. */
export async function main(
  args: readonly string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  let config: ChaosConfig;
  try {
    const parsed = parseConfig(CHAOS_CONFIG, { args, env });
    if (parsed.help) {
      console.log(helpText(CHAOS_CONFIG, USAGE));
      return 0;
    }
    config = parsed.values;
  } catch (error) {
    console.error(`error: ${errorMessage(error)}`);
    return 2;
  }
  const guarantees: Guarantee[] = config.guarantee === "both"
    ? [...GUARANTEES]
    : [config.guarantee as Guarantee];
  const controller = new AbortController();
  const stop = () => {
    if (controller.signal.aborted) Deno.exit(130);
    console.error("signal received: stopping the services and the broker (again to exit now)");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    const report = await runChaos({
      signal: controller.signal,
      brokers: config.brokers?.trim() || undefined,
      orders: config.orders,
      rate: config.rate,
      workers: config.workers,
      processes: config.processes,
      kills: config.kills,
      brokerRestarts: config.brokerRestarts,
      guarantees,
      seed: config.seed,
      partitions: config.partitions,
      failureRate: config.failureRate,
      drainTimeoutMs: config.drainTimeout * 1000,
      log: (line) => console.error(line),
    });
    const table = renderReport(report);
    console.log(table);
    if (config.report !== undefined) await Deno.writeTextFile(config.report, `${table}\n`);
    return report.passed ? 0 : 1;
  } catch (error) {
    console.error(`error: ${errorMessage(error)}`);
    return 2;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args, Deno.env.toObject()));
}

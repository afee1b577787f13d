/**
 * Whether tests can reach a real Kafka broker, and how broker tests register themselves.
 *
 * `deno task test` (tests/_test_runner.ts) sets `KAFKA_BROKERS` to a local broker it started,
 * or sets `PIPELINE_BROKER_TESTS=off` with a reason when it could not start one. Without a
 * broker, broker tests are ignored on a developer's machine (the reason is printed once) and
 * fail under CI (`CI=true`). Without the permission to read the environment and reach
 * 127.0.0.1 (plain `deno test`), they are ignored with the reason naming `deno task test`
 * (see tests/_permissions.ts).
 *
 * kafkajs reads the environment when it loads, so broker tests import the Kafka transport
 * (and kafkajs) inside the test, with {@linkcode loadKafkaTransport} or `await import(...)`,
 * never at the top of the test module.
 *
 * @example
 * ```ts ignore
 * import { brokerAvailable, brokerTest } from "../_broker.ts";
 * const { brokers } = brokerAvailable();
 * Deno.test({ name: "needs a broker", ignore: !brokers, fn: () => {} });
 * brokerTest("also needs a broker", async (brokers) => {});
 * ```
 *
 * @module
 */
import { FULL_COMMAND, granted, PERMISSIONS_COMMAND, reportIgnored } from "./_permissions.ts";

/** What {@linkcode brokerAvailable} found. */
export interface BrokerAvailability {
  /** The bootstrap brokers (`KAFKA_BROKERS`), when a broker is configured. */
  readonly brokers?: string;
  /** Why broker tests cannot run, when no broker is configured. */
  readonly ignoreReason?: string;
}

/** Set by the test runner when it could not provide a broker. */
const OFF_VARIABLE = "PIPELINE_BROKER_TESTS";
/** The runner's reason for `PIPELINE_BROKER_TESTS=off`. */
const REASON_VARIABLE = "PIPELINE_BROKER_TESTS_REASON";

/** Why broker tests are ignored when the test process may not read `KAFKA_BROKERS`. */
const NO_PERMISSION_REASON = `no permission to read KAFKA_BROKERS: run '${FULL_COMMAND}'`;
/** The same, printed once: which commands run broker tests. */
const NO_PERMISSION_MESSAGE = `Kafka broker tests are ignored: run them with '${FULL_COMMAND}' ` +
  "(it starts a local broker), or with KAFKA_BROKERS set and the permissions of " +
  `'${PERMISSIONS_COMMAND}'`;

/**
 * The configured broker, or why there is none. Prints the reason once per test module
 * (unless the runner already did). Use it
 * as `Deno.test({ name, ignore: !brokers, fn })`; under CI prefer {@linkcode brokerTest}, which
 * turns a missing broker into a failure (a test ignored this way would pass CI silently; the
 * runner also exits non-zero in that case).
 */
export function brokerAvailable(): BrokerAvailability {
  if (!granted("env", "net")) {
    reportIgnored(NO_PERMISSION_MESSAGE);
    return { ignoreReason: NO_PERMISSION_REASON };
  }
  const brokers = Deno.env.get("KAFKA_BROKERS")?.trim();
  if (brokers) return { brokers };
  const ignoreReason = Deno.env.get(OFF_VARIABLE) === "off"
    ? Deno.env.get(REASON_VARIABLE) ??
      "no KAFKA_BROKERS and no java/mvn to run the local broker"
    : `KAFKA_BROKERS is not set: run '${FULL_COMMAND}' (starts a local broker) or start one ` +
      "with 'deno task broker' and set KAFKA_BROKERS=127.0.0.1:9092";
  // The runner has already said why when it set PIPELINE_BROKER_TESTS=off.
  if (Deno.env.get(OFF_VARIABLE) !== "off") {
    const verdict = inCi() ? "will fail under CI" : "are ignored";
    reportIgnored(`Kafka broker tests ${verdict}: ${ignoreReason}`);
  }
  return { ignoreReason };
}

/**
 * Registers a test that needs a real broker; `fn` gets the `KAFKA_BROKERS` value. Without a
 * broker the test is ignored (its name says why), or fails under CI. Without the permission
 * to read `KAFKA_BROKERS` (plain `deno test`) it is ignored.
 *
 * @example
 * ```ts ignore
 * brokerTest("admin describes the cluster", async (brokers) => {
 *   // connect to `brokers` ...
 * });
 * ```
 */
export function brokerTest(
  name: string,
  fn: (brokers: string) => Promise<void> | void,
): void {
  const { brokers, ignoreReason } = brokerAvailable();
  if (brokers) {
    Deno.test(name, () => fn(brokers));
  } else if (inCi()) {
    Deno.test(name, () => {
      throw new Error(`Cannot run a Kafka broker test under CI: ${ignoreReason}`);
    });
  } else {
    Deno.test({ name: `${name} [ignored: no Kafka broker]`, ignore: true, fn: () => {} });
  }
}

/**
 * The Kafka transport module, imported on first use: kafkajs reads the environment when it
 * loads, which a test module must not do at its top (plain `deno test` grants no permission).
 *
 * @example
 * ```ts ignore
 * brokerTest("the transport creates topics", async (brokers) => {
 *   const { createKafkaTransport } = await loadKafkaTransport();
 *   const transport = createKafkaTransport(brokers);
 * });
 * ```
 */
export function loadKafkaTransport(): Promise<typeof import("../pipeline/transport/kafka/mod.ts")> {
  return import("../pipeline/transport/kafka/mod.ts");
}

/** Whether this is CI's run (`CI=true`); a test process that may not read it is not. */
function inCi(): boolean {
  return granted("env") && Deno.env.get("CI") === "true";
}

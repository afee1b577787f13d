/**
 * Whether tests can reach a real Kafka broker, and how broker tests register themselves.
 *
 * `deno task test` (tests/_test_runner.ts) sets `KAFKA_BROKERS` to a local broker it started,
 * or sets `PIPELINE_BROKER_TESTS=off` with a reason when it could not start one. Without a
 * broker, broker tests are ignored on a developer's machine (the reason is printed once) and
 * fail under CI (`CI=true`).
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

let reasonPrinted = false;

/**
 * The configured broker, or why there is none. Prints the reason once per test process
 * (unless the runner already did). Use it
 * as `Deno.test({ name, ignore: !brokers, fn })`; under CI prefer {@linkcode brokerTest}, which
 * turns a missing broker into a failure (a test ignored this way would pass CI silently; the
 * runner also exits non-zero in that case).
 */
export function brokerAvailable(): BrokerAvailability {
  const brokers = Deno.env.get("KAFKA_BROKERS")?.trim();
  if (brokers) return { brokers };
  const ignoreReason = Deno.env.get(OFF_VARIABLE) === "off"
    ? Deno.env.get(REASON_VARIABLE) ??
      "no KAFKA_BROKERS and no java/mvn to run the local broker"
    : "KAFKA_BROKERS is not set: run 'deno task test' (starts a local broker) or start one " +
      "with 'deno task broker' and set KAFKA_BROKERS=127.0.0.1:9092";
  // The runner has already said why when it set PIPELINE_BROKER_TESTS=off.
  if (!reasonPrinted && Deno.env.get(OFF_VARIABLE) !== "off") {
    reasonPrinted = true;
    const verdict = inCi() ? "will fail under CI" : "are ignored";
    console.error(`Kafka broker tests ${verdict}: ${ignoreReason}`);
  }
  return { ignoreReason };
}

/**
 * Registers a test that needs a real broker; `fn` gets the `KAFKA_BROKERS` value. Without a
 * broker the test is ignored (its name says why), or fails under CI.
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

function inCi(): boolean {
  return Deno.env.get("CI") === "true";
}

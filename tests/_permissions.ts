/**
 * Which permissions a test needs, so that plain `deno test` (no flags) passes: a test whose
 * permissions are not granted is registered as ignored, and why is printed once (Deno prints
 * no reason for an ignored test).
 *
 * The three ways to run the tests:
 *
 * - `deno test`: no permissions. Runs every test that needs none (the stages' own tests, the
 *   framework's unit tests, whole pipelines on the embedded transport with a fake clock).
 * - `deno test -P`: the project's permission set, `"permissions": { "default": ... }` in
 *   deno.json. Runs every test that needs permissions but no Kafka broker. The set grants the
 *   environment, files, subprocesses and the network on 127.0.0.1 only; not `sys`, `ffi` or
 *   `import`. Environment, read and write are whole: tests copy the environment for child
 *   processes and use the system's temporary folder, whose path deno.json cannot name. (Deno
 *   refuses plain `deno test` when a set is declared as `"test": { "permissions": ... }`, so
 *   the set is the config's default one.)
 * - `deno task test`: everything, with a broker (tests/_test_runner.ts).
 *
 * A test declares what it needs with {@linkcode requires} in its options; broker
 * tests use `brokerTest` (tests/_broker.ts) and tests of external tools `toolTest`
 * (tests/infra/_tools.ts), which check permissions through this module too. Module top-level
 * code must not read the environment, files or the network without asking {@linkcode granted}
 * first, and modules that import kafkajs (which reads the environment when it loads) are
 * imported with `await import(...)` inside the tests that use them.
 *
 * @example
 * ```ts ignore
 * import { requires } from "../_permissions.ts";
 *
 * // Options as the second argument (Deno.test(name, options, fn)):
 * Deno.test("prometheus.yml scrapes the Collector", requires("read"), async () => {
 *   await Deno.readTextFile("infra/prometheus/prometheus.yml");
 * });
 * // Or spread into a definition:
 * Deno.test({ ...requires("env", "net"), name: "spans reach the receiver", fn: async () => {} });
 * ```
 *
 * @module
 */

/** A permission a test can need; see {@linkcode requires}. */
export type TestPermission = "env" | "net" | "read" | "run" | "write";

/**
 * What is asked of Deno for each permission. Network access is only ever needed on loopback
 * (tests serve and connect on 127.0.0.1 only), and the project's set grants no more.
 */
const DESCRIPTORS: Readonly<Record<TestPermission, Deno.PermissionDescriptor>> = {
  env: { name: "env" },
  net: { name: "net", host: "127.0.0.1" },
  read: { name: "read" },
  run: { name: "run" },
  write: { name: "write" },
};

/** The command that grants the project's permission set. */
export const PERMISSIONS_COMMAND = "deno test -P";
/** The command that runs every test, with a Kafka broker. */
export const FULL_COMMAND = "deno task test";

/** Reasons already printed by this test module (Deno runs each test module apart). */
const printed = new Set<string>();

/**
 * Whether every one of `permissions` is granted. Asking needs no permission and never
 * prompts, so module top-level code may call it, e.g. to read a file only when allowed:
 * `const doc = granted("read") ? await readYaml(path) : undefined`.
 */
export function granted(...permissions: TestPermission[]): boolean {
  return permissions.every((permission) =>
    Deno.permissions.querySync(DESCRIPTORS[permission]).state === "granted"
  );
}

/**
 * Test options that ignore the test unless every one of `permissions` is granted; the reason,
 * naming `deno test -P` and `deno task test`, is printed once (on stderr). Pass it as the
 * options argument or spread it into a definition:
 *
 * ```ts ignore
 * Deno.test("exports spans over OTLP", requires("net", "env"), async () => {});
 * Deno.test({ ...requires("net", "env"), name: "exports spans over OTLP", fn });
 * ```
 *
 * To combine it with another condition, write
 * `ignore: requires("read").ignore || otherCondition`.
 */
export function requires(...permissions: TestPermission[]): { ignore: boolean } {
  const missing = permissions.filter((permission) => !granted(permission));
  if (missing.length === 0) return { ignore: false };
  reportIgnored(
    `Tests that need permissions are ignored: run them with '${PERMISSIONS_COMMAND}' (the ` +
      `project's permission set), or everything, with a Kafka broker, with '${FULL_COMMAND}'`,
  );
  return { ignore: true };
}

/**
 * Prints why tests are ignored, once per reason and test module, on stderr. Used by
 * {@linkcode requires} and by the broker and tool test helpers.
 */
export function reportIgnored(reason: string): void {
  if (printed.has(reason)) return;
  printed.add(reason);
  console.error(reason);
}

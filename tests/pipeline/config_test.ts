import assert from "node:assert/strict";
import { helpText, markdownTable, parseConfig, setting } from "../../pipeline/config.ts";
import { ConfigError } from "../../pipeline/errors.ts";

const SPEC = {
  brokers: setting({ type: "string", env: "KAFKA_BROKERS", description: "Brokers" }),
  rate: setting({
    type: "number",
    env: "ORDER_RATE",
    flag: "rate",
    default: 10,
    min: 0,
    description: "Orders per second",
  }),
  maxOrders: setting({
    type: "integer",
    env: "MAX_ORDERS",
    flag: "max-orders",
    min: 0,
    max: 1000,
    description: "Orders to generate",
  }),
  retry: setting({
    type: "string",
    env: "RETRY_POLICY",
    flag: "retry",
    default: "backoff",
    choices: ["reference", "backoff"],
    description: "Retry preset",
  }),
  verbose: setting({ type: "boolean", flag: "verbose", default: false, description: "Talk more" }),
};

function assertConfigError(
  run: () => unknown,
  expected: { message: string; field: string },
): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    assert.equal(error.message, expected.message);
    assert.equal(error.field, expected.field);
    return true;
  });
}

Deno.test("parseConfig() takes defaults when neither flag nor variable is given", () => {
  const { values, sources, help } = parseConfig(SPEC, { args: [], env: {} });
  assert.deepEqual(values, {
    brokers: undefined,
    rate: 10,
    maxOrders: undefined,
    retry: "backoff",
    verbose: false,
  });
  assert.equal(help, false);
  assert.deepEqual(new Set(Object.values(sources)), new Set(["default"]));
});

Deno.test("parseConfig() prefers a flag over the variable over the default", () => {
  const env = { ORDER_RATE: "5", MAX_ORDERS: "7", KAFKA_BROKERS: "127.0.0.1:9092" };
  const { values, sources } = parseConfig(SPEC, { args: ["--rate", "2.5"], env });
  assert.equal(values.rate, 2.5);
  assert.equal(sources.rate, "flag");
  assert.equal(values.maxOrders, 7);
  assert.equal(sources.maxOrders, "env");
  assert.equal(values.brokers, "127.0.0.1:9092");
  assert.equal(sources.retry, "default");
});

Deno.test("parseConfig() reads --name=value and boolean flags without a value", () => {
  const { values } = parseConfig(SPEC, {
    args: ["--max-orders=200", "--verbose", "--retry=reference"],
    env: {},
  });
  assert.equal(values.maxOrders, 200);
  assert.equal(values.verbose, true);
  assert.equal(values.retry, "reference");
  assert.equal(parseConfig(SPEC, { args: ["--verbose", "false"], env: {} }).values.verbose, false);
});

Deno.test("parseConfig() treats an empty variable as unset", () => {
  assert.equal(parseConfig(SPEC, { args: [], env: { ORDER_RATE: "" } }).values.rate, 10);
});

Deno.test("parseConfig() refuses a bad variable, naming the variable", () => {
  assertConfigError(() => parseConfig(SPEC, { args: [], env: { ORDER_RATE: "fast" } }), {
    message: `Cannot use ORDER_RATE as it must be a number: current value is "fast"`,
    field: "ORDER_RATE",
  });
  assertConfigError(() => parseConfig(SPEC, { args: [], env: { MAX_ORDERS: "2.5" } }), {
    message: `Cannot use MAX_ORDERS as it must be an integer: current value is "2.5"`,
    field: "MAX_ORDERS",
  });
  assertConfigError(() => parseConfig(SPEC, { args: [], env: { MAX_ORDERS: "ten" } }), {
    message: `Cannot use MAX_ORDERS as it must be an integer: current value is "ten"`,
    field: "MAX_ORDERS",
  });
  assertConfigError(() => parseConfig(SPEC, { args: [], env: { MAX_ORDERS: "1001" } }), {
    message: `Cannot use MAX_ORDERS as it must be at most 1000: current value is "1001"`,
    field: "MAX_ORDERS",
  });
  assertConfigError(() => parseConfig(SPEC, { args: [], env: { RETRY_POLICY: "forever" } }), {
    message:
      `Cannot use RETRY_POLICY as it must be one of "reference", "backoff": current value is "forever"`,
    field: "RETRY_POLICY",
  });
});

Deno.test("parseConfig() refuses a bad flag value, naming the flag", () => {
  assertConfigError(() => parseConfig(SPEC, { args: ["--rate", "-1"], env: {} }), {
    message: `Cannot use flag "--rate" as it must be at least 0: current value is "-1"`,
    field: `flag "--rate"`,
  });
  assertConfigError(() => parseConfig(SPEC, { args: ["--max-orders="], env: {} }), {
    message: `Cannot use flag "--max-orders" as it must be an integer: current value is ""`,
    field: `flag "--max-orders"`,
  });
  assertConfigError(() => parseConfig(SPEC, { args: ["--verbose=maybe"], env: {} }), {
    message: `Cannot use flag "--verbose" as it must be true or false: current value is "maybe"`,
    field: `flag "--verbose"`,
  });
});

Deno.test("parseConfig() refuses a flag given without its value", () => {
  assertConfigError(() => parseConfig(SPEC, { args: ["--rate"], env: {} }), {
    message: `Cannot use flag "--rate" as it has no value`,
    field: "--rate",
  });
});

Deno.test("parseConfig() refuses an unknown flag and a stray argument", () => {
  assertConfigError(() => parseConfig(SPEC, { args: ["--bogus", "1"], env: {} }), {
    message: `Cannot use argument "--bogus" as it is not a known flag: see --help`,
    field: "--bogus",
  });
  assertConfigError(() => parseConfig(SPEC, { args: ["200"], env: {} }), {
    message: `Cannot use argument "200" as it is not a known flag: see --help`,
    field: "200",
  });
  // A setting with no flag is only read from its variable.
  assertConfigError(() => parseConfig(SPEC, { args: ["--brokers", "x"], env: {} }), {
    message: `Cannot use argument "--brokers" as it is not a known flag: see --help`,
    field: "--brokers",
  });
});

Deno.test("parseConfig() reports --help even when a variable holds a bad value", () => {
  for (const flag of ["--help", "-h"]) {
    const parsed = parseConfig(SPEC, { args: [flag], env: { ORDER_RATE: "fast" } });
    assert.equal(parsed.help, true);
    assert.equal(parsed.values.rate, 10);
  }
});

Deno.test("helpText() lists every flag and variable with type and default", () => {
  assert.equal(
    helpText(SPEC, "Usage: numbers [options]"),
    `Usage: numbers [options]

Options (flag, environment variable, default):
  KAFKA_BROKERS
      Brokers (string, default unset)
  --rate, ORDER_RATE
      Orders per second (number, default 10)
  --max-orders, MAX_ORDERS
      Orders to generate (integer, default unset)
  --retry, RETRY_POLICY
      Retry preset (string, default "backoff")
  --verbose
      Talk more (boolean, default false)
  -h, --help
      Show this help and exit
`,
  );
});

Deno.test("markdownTable() renders one row per setting", () => {
  assert.equal(
    markdownTable(SPEC),
    `| flag | environment variable | type | default | description |
| --- | --- | --- | --- | --- |
|  | \`KAFKA_BROKERS\` | string | \`unset\` | Brokers |
| \`--rate\` | \`ORDER_RATE\` | number | \`10\` | Orders per second |
| \`--max-orders\` | \`MAX_ORDERS\` | integer | \`unset\` | Orders to generate |
| \`--retry\` | \`RETRY_POLICY\` | string | \`"backoff"\` | Retry preset |
| \`--verbose\` |  | boolean | \`false\` | Talk more |
`,
  );
});

Deno.test("markdownTable() escapes a pipe inside a cell", () => {
  const table = markdownTable({
    mode: setting({ type: "string", default: "a|b", description: "Either a | b" }),
  });
  const row = table.trimEnd().split("\n")[2];
  // Six unescaped pipes: five columns.
  assert.equal(row.match(/(?<!\\)\|/g)?.length, 6, row);
});

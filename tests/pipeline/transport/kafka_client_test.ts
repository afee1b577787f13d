/**
 * Choosing the Kafka client: `KAFKA_CLIENT` through the config spec, checked without loading
 * any client (no permissions needed).
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../../pipeline/config.ts";
import { ConfigError } from "../../../pipeline/errors.ts";
import {
  DEFAULT_KAFKA_CLIENT,
  KAFKA_CLIENTS,
  parseKafkaClient,
} from "../../../pipeline/transport/kafka_client.ts";
import { ORDERS_CONFIG } from "../../../stages/config.ts";

Deno.test("KAFKA_CLIENT defaults to platformatic and accepts kafkajs", () => {
  assert.equal(DEFAULT_KAFKA_CLIENT, "platformatic");
  assert.deepEqual([...KAFKA_CLIENTS], ["kafkajs", "platformatic"]);
  assert.equal(
    parseConfig(ORDERS_CONFIG, { args: [], env: {} }).values.kafkaClient,
    "platformatic",
  );
  const chosen = parseConfig(ORDERS_CONFIG, { args: [], env: { KAFKA_CLIENT: "kafkajs" } });
  assert.equal(chosen.values.kafkaClient, "kafkajs");
});

Deno.test("a bad KAFKA_CLIENT is refused naming the variable and the accepted values", () => {
  assert.throws(
    () => parseConfig(ORDERS_CONFIG, { args: [], env: { KAFKA_CLIENT: "librdkafka" } }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, /KAFKA_CLIENT/);
      assert.match(error.message, /"kafkajs", "platformatic"/);
      return true;
    },
  );
  assert.throws(
    () => parseKafkaClient("KafkaJS"),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.field, "KAFKA_CLIENT");
      assert.equal(
        error.message,
        'Cannot use KAFKA_CLIENT as it must be one of "kafkajs", "platformatic": current ' +
          'value is "KafkaJS"',
      );
      return true;
    },
  );
  assert.equal(parseKafkaClient(undefined), "platformatic");
  assert.equal(parseKafkaClient(""), "platformatic");
});

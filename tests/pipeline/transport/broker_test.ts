/**
 * `createBrokerTransport` opens the transport on the chosen client, and every command's config
 * carries `KAFKA_CLIENT`. No broker needed (nothing connects until the first call), but
 * loading kafkajs reads `NODE_ENV`: run with `--allow-env`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../../pipeline/config.ts";
import { ConfigError } from "../../../pipeline/errors.ts";
import { createBrokerTransport, KAFKA_CLIENTS } from "../../../pipeline/transport/broker.ts";
import { KafkaSecurityError } from "../../../pipeline/transport/_security_error.ts";
import { REPLAY_CONFIG } from "../../../stages/dlq_replay.ts";
import { requires } from "../../_permissions.ts";

/** Loading kafkajs reads the environment, @platformatic/kafka reads a WebAssembly file. */
const needsClients = requires("env", "read");

Deno.test("dlq:replay honours KAFKA_CLIENT too", () => {
  const replay = parseConfig(REPLAY_CONFIG, { args: [], env: { KAFKA_CLIENT: "platformatic" } });
  assert.equal(replay.values.kafkaClient, "platformatic");
});

Deno.test({
  name: "createBrokerTransport() opens the transport on the chosen client, platformatic by default",
  ...needsClients,
}, async () => {
  const platformatic = await createBrokerTransport("127.0.0.1:9092");
  const kafkajs = await createBrokerTransport("127.0.0.1:9092", { client: "kafkajs" });
  try {
    assert.equal(kafkajs.kind, "kafka");
    assert.equal(kafkajs.target, "kafka 127.0.0.1:9092");
    assert.equal(platformatic.kind, "kafka");
    assert.equal(platformatic.target, "kafka 127.0.0.1:9092 (platformatic)");
    assert.deepEqual(platformatic.brokers, ["127.0.0.1:9092"]);
  } finally {
    await kafkajs.close();
    await platformatic.close();
  }
  await assert.rejects(
    () => createBrokerTransport("127.0.0.1:9092", { client: "rdkafka" as "kafkajs" }),
    (error: unknown) => error instanceof ConfigError && error.field === "KAFKA_CLIENT",
  );
});

Deno.test({
  name: "createBrokerTransport() hands the security settings to either client",
  ...needsClients,
}, async () => {
  const security = {
    protocol: "SASL_PLAINTEXT",
    sasl: { mechanism: "SCRAM-SHA-256", username: "alice", password: "pa55-never-shown" },
  } as const;
  for (const client of KAFKA_CLIENTS) {
    const transport = await createBrokerTransport("127.0.0.1:9092", { client, security });
    try {
      assert.equal(
        transport.target,
        `kafka 127.0.0.1:9092 (${
          client === "platformatic" ? "platformatic, " : ""
        }SASL_PLAINTEXT, SCRAM-SHA-256 as "alice")`,
      );
    } finally {
      await transport.close();
    }
  }
  // Read from the environment when not given, by both clients: the same settings everywhere.
  const before = Deno.env.get("KAFKA_SECURITY_PROTOCOL");
  Deno.env.set("KAFKA_SECURITY_PROTOCOL", "SSL");
  try {
    for (const client of KAFKA_CLIENTS) {
      const transport = await createBrokerTransport("127.0.0.1:9092", { client });
      await transport.close();
      assert.match(transport.target, / \((platformatic, )?SSL\)$/);
    }
    Deno.env.set("KAFKA_SECURITY_PROTOCOL", "SASL_SSL");
    for (const client of KAFKA_CLIENTS) {
      await assert.rejects(
        () => createBrokerTransport("127.0.0.1:9092", { client }),
        (error: unknown) =>
          error instanceof KafkaSecurityError && error.field === "KAFKA_SASL_MECHANISM",
      );
    }
  } finally {
    if (before === undefined) Deno.env.delete("KAFKA_SECURITY_PROTOCOL");
    else Deno.env.set("KAFKA_SECURITY_PROTOCOL", before);
  }
});

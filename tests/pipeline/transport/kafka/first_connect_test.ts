/**
 * A listener that accepts connections but never answers the client's protocol (a TLS listener
 * waiting for a handshake that a plaintext client never starts, or anything else silent) fails
 * the first call within `firstConnectTimeout`, not after kafkajs's request timeout and retries.
 *
 * @module
 */
import assert from "node:assert/strict";
import { BrokerUnavailableError } from "../../../../pipeline/errors.ts";
import { loadKafkaTransport } from "../../../_broker.ts";
import { granted, requires } from "../../../_permissions.ts";

const canConnect = granted("net", "env");
/** The Kafka transport, loaded only where env access is granted (kafkajs reads env on load). */
const kafka = granted("env") ? await loadKafkaTransport() : undefined;

Deno.test({
  name: "kafka transport: a silent listener fails the first call within firstConnectTimeout",
  ignore: !canConnect,
  // kafkajs's request timer on the abandoned connection outlives the test by design.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      try {
        for await (const conn of listener) held.push(conn); // accepted, never answered
      } catch {
        // The listener was closed: the test is over.
      }
    })();
    const transport = kafka!.createKafkaTransport(`127.0.0.1:${port}`, {
      security: { protocol: "PLAINTEXT" },
      firstConnectTimeout: 1500,
      logger: () => {},
    });
    try {
      const started = Date.now();
      await assert.rejects(transport.producer(), (error: unknown) => {
        assert.ok(error instanceof BrokerUnavailableError, String(error));
        assert.equal(error.field, "KAFKA_BROKERS");
        assert.equal(
          error.message,
          `Cannot connect to Kafka at "127.0.0.1:${port}" given by KAFKA_BROKERS with ` +
            `KAFKA_SECURITY_PROTOCOL "PLAINTEXT": no answer within 1500 ms; a TLS listener may ` +
            `be waiting for a handshake: if so, set KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL`,
        );
        return true;
      });
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 1400 && elapsed < 5000, `failed after ${elapsed} ms`);
      assert.ok(held.length > 0, "the client did connect to the silent listener");
    } finally {
      await transport.close();
      listener.close();
      for (const conn of held) conn.close();
      await accepting;
    }
  },
});

Deno.test(
  "createKafkaTransport() refuses a firstConnectTimeout that is not a positive integer",
  requires("env"),
  () => {
    assert.throws(
      () =>
        kafka!.createKafkaTransport("127.0.0.1:9092", {
          security: { protocol: "PLAINTEXT" },
          firstConnectTimeout: 0,
        }),
      /^ConfigError: Cannot create the Kafka transport as 'firstConnectTimeout' must be a positive integer: current value is 0$/,
    );
  },
);

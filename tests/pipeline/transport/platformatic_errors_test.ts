/**
 * How the platformatic transport maps @platformatic/kafka's errors: by class and by the
 * properties the client sets (`apiId`, `canRetry`), through aggregated errors and causes.
 * No broker needed; loading the client reads its WebAssembly file and the environment
 * (`--allow-read --allow-env`), so the tests are ignored without those permissions.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  BrokerUnavailableError,
  PipelineError,
  ProducerFencedError,
  RetryableError,
} from "../../../pipeline/errors.ts";

const canRead = (await Deno.permissions.query({ name: "read" })).state === "granted" &&
  (await Deno.permissions.query({ name: "env" })).state === "granted";

async function load() {
  const client = await import("@platformatic/kafka");
  const errors = await import("../../../pipeline/transport/platformatic/_errors.ts");
  return { client, errors };
}

Deno.test({
  name: "platformatic errors: a refused connection names KAFKA_BROKERS and is retriable",
  ignore: !canRead,
  fn: async () => {
    const { client, errors } = await load();
    const refused = new client.MultipleErrors("Cannot connect to any broker.", [
      new client.NetworkError("Connection failed to 127.0.0.1:1", {
        cause: new Error("connect ECONNREFUSED"),
      }),
    ]);
    const mapped = errors.toPipelineError("Cannot send records", ["127.0.0.1:1"], refused);
    assert.ok(mapped instanceof BrokerUnavailableError, String(mapped));
    assert.equal(mapped.retriable, true);
    assert.equal(mapped.field, "KAFKA_BROKERS");
    assert.match(mapped.message, /^Cannot reach Kafka broker at "127\.0\.0\.1:1" given by/);
    assert.equal(mapped.cause, refused);
  },
});

Deno.test({
  name: "platformatic errors: INVALID_PRODUCER_EPOCH and PRODUCER_FENCED mean fenced",
  ignore: !canRead,
  fn: async () => {
    const { client, errors } = await load();
    for (const id of ["INVALID_PRODUCER_EPOCH", "PRODUCER_FENCED"]) {
      const wrapped = new client.MultipleErrors("Received response with error", [
        new client.ProtocolError(id),
      ]);
      assert.equal(errors.isFencing(wrapped), true, id);
      const mapped = errors.toPipelineError("Cannot commit", ["b:1"], wrapped, {
        transactionalId: "pay-orders-0",
      });
      assert.ok(mapped instanceof ProducerFencedError, `${id}: ${mapped}`);
      assert.equal(mapped.transactionalId, "pay-orders-0");
      assert.equal(mapped.retriable, false);
    }
    // Without a transactional id (a plain producer), fencing is just an error.
    const plain = errors.toPipelineError("Cannot send", ["b:1"], new client.ProtocolError(47));
    assert.ok(!(plain instanceof ProducerFencedError));
  },
});

Deno.test({
  name: "platformatic errors: what the client may retry is a RetryableError, the rest is not",
  ignore: !canRead,
  fn: async () => {
    const { client, errors } = await load();
    const retry = errors.toPipelineError(
      "Cannot send",
      ["b:1"],
      new client.ProtocolError("NOT_LEADER_OR_FOLLOWER"),
      { topic: "orders" },
    );
    assert.ok(retry instanceof RetryableError, String(retry));
    assert.equal(retry.topic, "orders");
    const fatal = errors.toPipelineError(
      "Cannot create topics",
      ["b:1"],
      new client.ProtocolError("TOPIC_AUTHORIZATION_FAILED"),
    );
    assert.ok(fatal instanceof PipelineError && !(fatal instanceof RetryableError));
    assert.equal(fatal.retriable, false);
    const own = new PipelineError("Already ours");
    assert.equal(errors.toPipelineError("x", ["b:1"], own), own, "framework errors pass");
  },
});

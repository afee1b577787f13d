/**
 * How the kafkajs transactional producer classifies kafkajs errors: fencing and expiry by
 * protocol error code anywhere in the chain, authorisation as configuration, the rest as the
 * transport classifies any kafkajs error. No broker needed.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  BrokerUnavailableError,
  ConfigError,
  PipelineError,
  ProducerFencedError,
  RetryableError,
} from "../../../pipeline/errors.ts";

// kafkajs reads NODE_ENV when it is loaded: without env access (a plain `deno test`) these
// tests are ignored rather than failing the whole file at import.
const envDenied = (await Deno.permissions.query({ name: "env", variable: "NODE_ENV" })).state !==
  "granted";
const { default: kafkajs } = envDenied ? { default: undefined } : await import("kafkajs");
const { transactionError } = envDenied
  ? { transactionError: undefined }
  : await import("../../../pipeline/transport/kafka/_transactional_producer.ts");

/** Registers a test, ignored without env access (see above). */
function test(name: string, fn: () => void): void {
  Deno.test({
    name: envDenied ? `${name} [ignored: needs --allow-env]` : name,
    ignore: envDenied,
    fn,
  });
}

const context = {
  transactionalId: "payments-orders-3",
  transactionTimeout: 60000,
  brokers: ["127.0.0.1:9092"],
};

function protocolError(type: string, code: number, retriable = false): Error {
  // kafkajs builds these from its table of error codes; its typings only admit an Error.
  const fromTable = Object.assign(new Error(`${type} from the broker`), { type, code, retriable });
  return new kafkajs!.KafkaJSProtocolError(fromTable);
}

test("transactionError() makes INVALID_PRODUCER_EPOCH and PRODUCER_FENCED a ProducerFencedError", () => {
  const epoch = protocolError("INVALID_PRODUCER_EPOCH", 47);
  const fenced = protocolError("PRODUCER_FENCED", 90);
  // kafkajs wraps errors it retried; the code is found anywhere in the chain.
  const retried = new kafkajs!.KafkaJSNumberOfRetriesExceeded(epoch, {
    retryCount: 5,
    retryTime: 300,
  });
  for (const error of [epoch, fenced, retried]) {
    const mapped = transactionError!("commit the transaction", error, context);
    assert.ok(mapped instanceof ProducerFencedError, `${error}`);
    assert.equal(mapped.transactionalId, "payments-orders-3");
    assert.equal(mapped.retriable, false);
    assert.equal(mapped.cause, error);
    assert.match(
      mapped.message,
      /^Cannot commit the transaction of "payments-orders-3" as a newer producer/,
    );
  }
});

test("transactionError() makes TRANSACTIONAL_ID_AUTHORIZATION_FAILED a ConfigError", () => {
  const mapped = transactionError!(
    "open the transactional producer",
    protocolError("TRANSACTIONAL_ID_AUTHORIZATION_FAILED", 53),
    context,
  );
  assert.ok(mapped instanceof ConfigError && !(mapped instanceof ProducerFencedError));
  assert.equal(mapped.field, "transactionalId");
  assert.match(mapped.message, /does not authorise that transactional id/);
});

test("transactionError() classifies other errors as the transport does", () => {
  const tooLarge = transactionError!(
    "send records in the transaction",
    protocolError("MESSAGE_TOO_LARGE", 10),
    context,
  );
  assert.ok(tooLarge instanceof PipelineError && !(tooLarge instanceof ProducerFencedError));
  assert.equal(tooLarge.retriable, false);
  const concurrent = transactionError!(
    "send records in the transaction",
    protocolError("CONCURRENT_TRANSACTIONS", 51, true),
    context,
  );
  assert.ok(concurrent instanceof RetryableError);
  const unreachable = transactionError!(
    "begin a transaction",
    new kafkajs!.KafkaJSConnectionError("Connection error: connect ECONNREFUSED"),
    context,
  );
  assert.ok(unreachable instanceof BrokerUnavailableError);
  const ours = new PipelineError("Cannot send offsets as 'groupId' must not be empty");
  assert.equal(transactionError!("send offsets in the transaction", ours, context), ours);
});

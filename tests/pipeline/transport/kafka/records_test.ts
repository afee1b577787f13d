import { Buffer } from "node:buffer";
import assert from "node:assert/strict";
import { toRecord } from "../../../../pipeline/transport/kafka/_records.ts";

Deno.test("kafka records: key and value are views of the fetched bytes, not copies", () => {
  // What kafkajs hands over: slices of one fetch response.
  const response = Buffer.from('....order-1{"id":"order-1"}....');
  const key = response.subarray(4, 11);
  const value = response.subarray(11, 27);
  const record = toRecord("orders", 2, {
    key,
    value,
    offset: "41",
    timestamp: "1700000000000",
    attributes: 0,
    headers: { "x-retry": [Buffer.from("1"), Buffer.from("2")], "x-origin": "orders" },
  });
  assert.equal(record.key!.buffer, response.buffer);
  assert.equal(record.value!.buffer, response.buffer);
  assert.equal(record.key!.constructor, Uint8Array);
  assert.equal(new TextDecoder().decode(record.key!), "order-1");
  assert.equal(new TextDecoder().decode(record.value!), '{"id":"order-1"}');
  assert.equal(record.offset, 41);
  assert.equal(record.partition, 2);
  assert.equal(record.timestamp, 1700000000000);
  // A header given twice: the last wins.
  assert.deepEqual(record.headers, { "x-retry": "2", "x-origin": "orders" });
});

Deno.test("kafka records: a tombstone and a record without a key keep their nulls", () => {
  const record = toRecord("changelog", 0, {
    key: null,
    value: null,
    offset: "0",
    timestamp: "0",
    attributes: 0,
    headers: {},
  });
  assert.equal(record.key, null);
  assert.equal(record.value, null);
  assert.deepEqual(record.headers, {});
});

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import kafkajsMurmur2 from "kafkajs/src/producer/partitioners/default/murmur2.js";
import { PipelineError } from "../../../pipeline/errors.ts";
import { murmur2, partitionForKey, toPositive } from "../../../pipeline/transport/murmur2.ts";
import { requires } from "../../_permissions.ts";

const encoder = new TextEncoder();

/** A small seeded generator (mulberry32), so failures reproduce. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return function next() {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomKeys(seed: number, count: number): Uint8Array[] {
  const random = seededRandom(seed);
  const keys: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const key = new Uint8Array(Math.floor(random() * 64));
    for (let j = 0; j < key.length; j++) key[j] = Math.floor(random() * 256);
    keys.push(key);
  }
  return keys;
}

Deno.test("murmur2() matches the vectors of Kafka's UtilsTest.testMurmur2", () => {
  const cases: [string | number[], number][] = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    [[0x61, 0x62, 0x63], 479470107],
  ];
  for (const [input, expected] of cases) {
    const bytes = typeof input === "string" ? encoder.encode(input) : new Uint8Array(input);
    assert.equal(murmur2(bytes), expected, `murmur2 of ${JSON.stringify(input)}`);
  }
});

Deno.test("murmur2() matches the Java client on short keys of every tail length", () => {
  // Values computed by Kafka's Java Utils.murmur2 (quoted by ports that test against it).
  const cases: [string, number][] = [
    ["1", -1993445489],
    ["12", 126087238],
    ["123", -267702483],
    ["1234", -1614185708],
    ["12345", -1188365604],
  ];
  for (const [input, expected] of cases) {
    assert.equal(murmur2(encoder.encode(input)), expected, `murmur2 of "${input}"`);
  }
});

Deno.test("murmur2() equals kafkajs's default murmur2 on 2000 seeded random keys", () => {
  for (const key of randomKeys(20240601, 2000)) {
    assert.equal(murmur2(key), kafkajsMurmur2(Buffer.from(key)), `key ${key}`);
  }
});

Deno.test(
  "partitionForKey() equals kafkajs's DefaultPartitioner for keyed records",
  requires("env"),
  async () => {
    // Imported here: kafkajs reads the environment when it loads (tests/_permissions.ts).
    const { default: kafkajs } = await import("kafkajs");
    const partitioner = kafkajs.Partitioners.DefaultPartitioner();
    const random = seededRandom(7);
    for (const key of randomKeys(99, 1000)) {
      const partitions = 1 + Math.floor(random() * 64);
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 1,
        partitionErrorCode: 0,
        replicas: [1],
        isr: [1],
        offlineReplicas: [],
      }));
      const expected = partitioner({
        topic: "t",
        partitionMetadata,
        message: { key: Buffer.from(key), value: null },
      });
      assert.equal(partitionForKey(key, partitions), expected, `key ${key} over ${partitions}`);
    }
  },
);

Deno.test("toPositive() clears the sign bit rather than negating", () => {
  assert.equal(toPositive(-1), 0x7fffffff);
  assert.equal(toPositive(-2147483648), 0);
  assert.equal(toPositive(5), 5);
});

Deno.test("partitionForKey() refuses a partition count that is not a positive integer", () => {
  for (const partitions of [0, -1, 1.5, Number.NaN]) {
    assert.throws(
      () => partitionForKey(encoder.encode("k"), partitions),
      (error: unknown) => error instanceof PipelineError && error.field === "partitions",
    );
  }
});

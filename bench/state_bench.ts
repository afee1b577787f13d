/**
 * What a keyed stage's state costs: heap bytes per key held, and the time to restore a million
 * keys from the changelog, on the embedded transport and (with `KAFKA_BROKERS`) on a real
 * broker. Keys look like the orders pipeline's (`order-<uuid>`, 42 bytes).
 *
 * ```sh
 * deno task bench:state                      # embedded, 1 000 000 keys
 * KAFKA_BROKERS=127.0.0.1:9092 deno task bench:state --keys 200000
 * ```
 *
 * Bounded: at most `--keys` keys (default 1 000 000, at most 5 000 000), one run.
 *
 * @module
 */
import { createStageState } from "../pipeline/state_store.ts";
import type { StageState } from "../pipeline/state_store.ts";
import { createEmbeddedTransport } from "../pipeline/transport/embedded/mod.ts";
import { createKafkaTransport } from "../pipeline/transport/kafka/mod.ts";
import type { OutgoingRecord, Transport } from "../pipeline/transport/transport.ts";

const PARTITIONS = 3;
const MAX_KEYS = 5_000_000;

function parseKeys(args: readonly string[]): number {
  const at = args.indexOf("--keys");
  const keys = at < 0 ? 1_000_000 : Number(args[at + 1]);
  if (!Number.isSafeInteger(keys) || keys < 1 || keys > MAX_KEYS) {
    throw new RangeError(
      `Cannot run the state bench as '--keys' must be an integer from 1 to ${MAX_KEYS}: current value is ${
        args[at + 1]
      }`,
    );
  }
  return keys;
}

/** Heap in use after a full collection (needs `--v8-flags=--expose-gc`). */
function heapUsed(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  return Deno.memoryUsage().heapUsed;
}

async function fillChangelog(
  transport: Transport,
  state: StageState,
  keys: number,
): Promise<void> {
  const producer = await transport.producer();
  const at = Date.now();
  const batch: OutgoingRecord[] = [];
  for (let i = 0; i < keys; i++) {
    const key = `order-${crypto.randomUUID()}`;
    batch.push(state.changelogRecord(i % PARTITIONS, key, { outcome: "output", at }));
    if (batch.length === 5000 || i === keys - 1) {
      await producer.send(batch.splice(0));
    }
  }
  await producer.close();
}

async function measure(name: string, transport: Transport, keys: number) {
  const changelog = `bench-state-${Date.now().toString(36)}-changelog`;
  await transport.ensureTopics([{
    name: changelog,
    partitions: PARTITIONS,
    config: { "cleanup.policy": "compact" },
  }]);
  const writer = createStageState(transport, { changelog });
  const filling = Date.now();
  await fillChangelog(transport, writer, keys);
  const fillMs = Date.now() - filling;
  const before = heapUsed();
  const state = createStageState(transport, { changelog });
  const started = performance.now();
  await state.listener.assigned(
    Array.from({ length: PARTITIONS }, (_, partition) => ({ topic: "in", partition })),
    new AbortController().signal,
  );
  const restoreMs = performance.now() - started;
  const after = heapUsed();
  if (state.size !== keys) throw new Error(`Restored ${state.size} keys, expected ${keys}`);
  const result = {
    transport: name,
    keys,
    bytes_per_key: Math.round((after - before) / keys),
    restore_ms: Math.round(restoreMs),
    restore_s_per_million_keys: Number((restoreMs / keys * 1e6 / 1000).toFixed(2)),
    fill_ms: fillMs,
  };
  console.log(JSON.stringify(result));
  return result;
}

if (import.meta.main) {
  const keys = parseKeys(Deno.args);
  if (typeof (globalThis as { gc?: unknown }).gc !== "function") {
    console.error("state bench: run with --v8-flags=--expose-gc for exact heap numbers");
  }
  const embedded = createEmbeddedTransport();
  await measure("embedded", embedded, keys);
  await embedded.close();
  const brokers = Deno.env.get("KAFKA_BROKERS");
  if (brokers) {
    const kafka = createKafkaTransport(brokers, { logger: () => {} });
    try {
      await measure(`kafka ${brokers}`, kafka, keys);
    } finally {
      await kafka.close();
    }
  }
}

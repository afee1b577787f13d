/**
 * What a keyed stage's state costs: heap bytes per key held, and the time to restore a million
 * keys from the changelog, on the embedded transport and (with `KAFKA_BROKERS`) on a real
 * broker. Keys look like the orders pipeline's (`order-<uuid>`, 42 bytes).
 *
 * ```sh
 * deno task bench:state                      # embedded, 1 000 000 keys
 * KAFKA_BROKERS=127.0.0.1:9092 deno task bench:state --keys 200000
 * KAFKA_BROKERS=127.0.0.1:9092 deno task bench:state --flow --orders 500000
 * ```
 *
 * Bounded: at most `--keys` keys (default 1 000 000, at most 5 000 000), one run.
 *
 * `--flow` (needs `KAFKA_BROKERS`) measures memory under flow instead: one payment stage member
 * handles `--orders` orders (default 500 000, at most 2 000 000) pre-written to the input with a
 * state retention of `--retention-ms` (default 30 000), sampling RSS every `--sample-every`
 * outcomes (default 10 000), then a second member restores the state. It runs twice: first over
 * `--short-history` orders (default 10 000), then over `--orders`, so that the two restores
 * compare. `--changelog-segment-ms N` creates the changelogs beforehand with that `segment.ms`
 * (and a low dirty ratio), so that the broker compacts them during the run; `--heap-snapshots DIR`
 * writes V8 heap snapshots at 20 % and 100 % of each flow (needs write access to DIR). Each phase is bounded by `--phase-timeout-ms` (default 1 800 000). Progress on stderr;
 * the result on stdout and in `bench/results/state-flow-<time>.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createStageState } from "../pipeline/state_store.ts";
import type { StageState } from "../pipeline/state_store.ts";
import { createEmbeddedTransport } from "../pipeline/transport/embedded/mod.ts";
import { createKafkaTransport } from "../pipeline/transport/kafka/mod.ts";
import type { OutgoingRecord, Transport } from "../pipeline/transport/transport.ts";
import { runStateFlow } from "./_state_flow.ts";

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
  const rssBefore = Deno.memoryUsage().rss;
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
    // RSS never shrinks back: what the restore added is what it needed at its peak.
    restore_rss_growth_mib: Math.round((Deno.memoryUsage().rss - rssBefore) / 1048576),
    fill_ms: fillMs,
  };
  console.log(JSON.stringify(result));
  return result;
}

function integerFlag(
  values: Record<string, string | boolean | undefined>,
  name: string,
  fallback: number,
  max: number,
): number {
  const raw = values[name];
  const value = typeof raw === "string" ? Number(raw) : fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new RangeError(
      `Cannot run the state flow bench as '--${name}' must be an integer from 1 to ${max}: current value is ${raw}`,
    );
  }
  return value;
}

async function flow(args: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      flow: { type: "boolean" },
      orders: { type: "string" },
      "short-history": { type: "string" },
      "retention-ms": { type: "string" },
      "sample-every": { type: "string" },
      "phase-timeout-ms": { type: "string" },
      "changelog-segment-ms": { type: "string" },
      "heap-snapshots": { type: "string" },
    },
  });
  const brokers = Deno.env.get("KAFKA_BROKERS");
  if (!brokers) throw new Error("Cannot run the state flow bench as KAFKA_BROKERS is not set");
  const options = {
    retentionMs: integerFlag(values, "retention-ms", 30_000, 7 * 24 * 3600 * 1000),
    sampleEvery: integerFlag(values, "sample-every", 10_000, 1_000_000),
    phaseTimeoutMs: integerFlag(values, "phase-timeout-ms", 1_800_000, 7_200_000),
    heapSnapshotDir: typeof values["heap-snapshots"] === "string"
      ? values["heap-snapshots"]
      : undefined,
    changelogSegmentMs: values["changelog-segment-ms"] === undefined
      ? undefined
      : integerFlag(values, "changelog-segment-ms", 0, 7 * 24 * 3600 * 1000),
  };
  const orders = integerFlag(values, "orders", 500_000, 2_000_000);
  const short = integerFlag(values, "short-history", 10_000, 2_000_000);
  const kafka = createKafkaTransport(brokers, { logger: () => {} });
  const run = Date.now().toString(36);
  try {
    const shortRun = await runStateFlow(kafka, `${run}-short`, {
      ...options,
      orders: short,
      sampleEvery: Math.min(options.sampleEvery, Math.max(1, Math.floor(short / 10))),
    });
    const longRun = await runStateFlow(kafka, `${run}-long`, { ...options, orders });
    const result = {
      date: new Date().toISOString(),
      broker: brokers,
      command: `deno task bench:state ${args.join(" ")}`,
      short: shortRun,
      long: longRun,
    };
    console.log(
      JSON.stringify({
        ...result,
        short: { ...shortRun, samples: undefined },
        long: { ...longRun, samples: undefined },
      }),
    );
    const file = `bench/results/state-flow-${result.date.replaceAll(":", "-").slice(0, 19)}Z.json`;
    await Deno.writeTextFile(file, JSON.stringify(result, null, 2) + "\n");
    console.error(`state flow: written ${file}`);
  } finally {
    await kafka.close();
  }
}

if (import.meta.main && Deno.args.includes("--flow")) {
  await flow(Deno.args);
} else if (import.meta.main) {
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

/**
 * kcat (librdkafka's command-line client) as the fault suite's independent hands and eyes: it
 * publishes the orders, writes the poison, and reads every topic back, so a bug in the
 * runtime's own Kafka client cannot hide itself in what the suite counts. The real-broker
 * integration tests (`tests/integration/_integration.ts`) read topics and run kcat through
 * this module too, so both parse `kcat -J` one way.
 *
 * @module
 */
import { ChaosError } from "./errors.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Large enough for the 1000 KiB poison record and its dead letter. */
const MAX_BYTES = "2097152";

/** A record as `kcat -J` prints it. */
export interface KcatRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly payload: string | null;
  /** Header names and values (a later header of the same name wins). */
  readonly headers: Readonly<Record<string, string>>;
}

/** Where kcat finds the broker. */
export interface KcatTarget {
  /** The kcat executable. */
  readonly kcat: string;
  /** Bootstrap brokers, `host:port[,host:port]`. */
  readonly brokers: string;
}

/**
 * Runs kcat with `args`, killed after `timeoutMs`, with `input` on its stdin when given.
 * Resolves with its stdout; rejects with a {@linkcode ChaosError} naming the command, its exit
 * code and the tail of its stderr.
 */
export async function runKcat(
  target: KcatTarget,
  args: readonly string[],
  timeoutMs: number,
  input?: Uint8Array,
): Promise<string> {
  const child = new Deno.Command(target.kcat, {
    args: [...args],
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(input);
    await writer.close();
  }
  const output = await child.output();
  if (!output.success) {
    throw new ChaosError(
      `Cannot run kcat ${args.join(" ")} as it exited with code ${output.code}: ` +
        decoder.decode(output.stderr).slice(-2000),
    );
  }
  return decoder.decode(output.stdout);
}

/** Options of {@linkcode readTopic}. */
export interface ReadTopicOptions {
  /**
   * Read with `isolation.level=read_committed` (records of aborted or open transactions are
   * left out), as a downstream consumer of an exactly-once pipeline does.
   * @default false (read_uncommitted: every record written)
   */
  readonly readCommitted?: boolean;
  /**
   * How long kcat may take, in milliseconds.
   * @default 120_000
   */
  readonly timeoutMs?: number;
}

/** Every record of `topic` from the beginning to its current end. */
export async function readTopic(
  target: KcatTarget,
  topic: string,
  options: ReadTopicOptions = {},
): Promise<KcatRecord[]> {
  const { readCommitted = false, timeoutMs = 120_000 } = options;
  const text = await runKcat(target, [
    "-C",
    "-b",
    target.brokers,
    "-t",
    topic,
    "-o",
    "beginning",
    "-e",
    "-q",
    "-J",
    "-X",
    `fetch.message.max.bytes=${MAX_BYTES}`,
    "-X",
    `isolation.level=${readCommitted ? "read_committed" : "read_uncommitted"}`,
  ], timeoutMs);
  return text.split("\n").filter((line) => line.trim() !== "").map(parseRecord);
}

function parseRecord(line: string): KcatRecord {
  const raw = JSON.parse(line) as {
    topic: string;
    partition: number;
    offset: number;
    key: string | null;
    payload: string | null;
    headers?: string[];
  };
  const headers: Record<string, string> = {};
  const list = raw.headers ?? [];
  for (let i = 0; i + 1 < list.length; i += 2) headers[list[i]] = list[i + 1];
  return {
    topic: raw.topic,
    partition: raw.partition,
    offset: raw.offset,
    key: raw.key,
    payload: raw.payload,
    headers,
  };
}

/** One record for {@linkcode produceRecord}. */
export interface KcatMessage {
  /** The key; `null` writes a record without a key. */
  readonly key: string | null;
  /** The value byte for byte; `null` writes a tombstone. */
  readonly value: string | Uint8Array | null;
  /** Headers. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Writes one record with its own kcat (the value from a file, so any bytes and sizes up to
 * the broker's limit go whole; a tombstone as a `key<TAB>` line with `-Z`).
 */
export async function produceRecord(
  target: KcatTarget,
  topic: string,
  message: KcatMessage,
  timeoutMs = 60_000,
): Promise<void> {
  const value = message.value;
  const file = await Deno.makeTempFile({ prefix: "chaos-value-" });
  try {
    await Deno.writeFile(
      file,
      value === null ? new Uint8Array() : typeof value === "string" ? encoder.encode(value) : value,
    );
    // No -E: kcat must fail when the record is not delivered (the caller tries again).
    const args = [
      "-P",
      "-b",
      target.brokers,
      "-t",
      topic,
      "-X",
      `message.max.bytes=${MAX_BYTES}`,
      "-X",
      "enable.idempotence=true",
      "-X",
      "message.timeout.ms=30000",
    ];
    for (const [name, header] of Object.entries(message.headers ?? {})) {
      args.push("-H", `${name}=${header}`);
    }
    if (value === null) {
      // An empty file makes no record at all; a line "key<TAB>" with -Z makes a null value.
      if (message.key === null || /[\t\n]/.test(message.key)) {
        throw new ChaosError("Cannot write a tombstone without a plain key", { topic });
      }
      await runKcat(
        target,
        [...args, "-K", "\t", "-Z"],
        timeoutMs,
        encoder.encode(`${message.key}\t\n`),
      );
      return;
    }
    if (message.key !== null) args.push("-k", message.key);
    await runKcat(target, [...args, file], timeoutMs);
  } finally {
    await Deno.remove(file);
  }
}

/** A long-lived kcat producer fed line by line: `key<TAB>value`. */
export interface KcatStream {
  /** Queues one record (key and value must hold no tab or newline). */
  send(key: string, value: string): Promise<void>;
  /**
   * Closes the input and waits for kcat to deliver everything and exit; kills it after
   * `timeoutMs`. Resolves with its exit code and how many deliveries it reported failed.
   */
  close(timeoutMs: number): Promise<{ code: number; failed: number; stderr: string }>;
}

/**
 * Starts one kcat producer on `topic`: idempotent, `acks=all`, Java-compatible murmur2
 * partitioning (the placement the runtime's own producer uses), five minutes of delivery
 * retries so a broker restart delays records rather than losing them.
 */
export function startStream(target: KcatTarget, topic: string): KcatStream {
  const child = new Deno.Command(target.kcat, {
    args: [
      "-P",
      // Keep going while the broker is down (it is restarted under the publisher).
      "-E",
      "-b",
      target.brokers,
      "-t",
      topic,
      "-K",
      "\t",
      "-X",
      "partitioner=murmur2_random",
      "-X",
      "enable.idempotence=true",
      "-X",
      "acks=all",
      "-X",
      "message.timeout.ms=300000",
      "-X",
      "linger.ms=5",
    ],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  let stderr = "";
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + chunk).slice(-64 * 1024);
    }
  })();
  return {
    async send(key, value) {
      await writer.write(encoder.encode(`${key}\t${value}\n`));
    },
    async close(timeoutMs) {
      await writer.close();
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const status = await child.status;
      clearTimeout(timer);
      await reading;
      const failed = stderr.split("\n").filter((line) => /delivery failed/i.test(line)).length;
      return { code: status.code, failed, stderr };
    },
  };
}

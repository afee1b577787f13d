/**
 * The @platformatic/kafka producer behind {@linkcode Producer}: idempotent, acks=all, one
 * produce round per `send`, one delivery report per record.
 *
 * Each record's partition is computed once, here: Kafka's murmur2 of the key bytes (the
 * placement of the Java client and kafkajs, see `../murmur2.ts`), round-robin per topic without
 * a key; the client is given it explicitly, so the report knows where every record went: the
 * partition's base offset from the response plus the records before it in the same request.
 * After a failed request the client drops its producer id and sequence numbers, so the next
 * send starts a fresh idempotent session and never reuses a sequence number.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  type MessageToProduce,
  ProduceAcks,
  Producer as PlatformaticProducer,
  type ProducerOptions,
} from "@platformatic/kafka";
import { PipelineError } from "../../errors.ts";
import { partitionForKey } from "../murmur2.ts";
import type { DeliveryReport, OutgoingRecord, Producer } from "../transport.ts";
import { toPipelineError } from "./_errors.ts";

/** Bytes or text as a Buffer view (no copy for bytes). */
export function toBuffer(data: Uint8Array | string | null): Buffer | undefined {
  if (data === null) return undefined;
  if (typeof data === "string") return Buffer.from(data, "utf8");
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Whether an object has an own enumerable property (no array of entries made to find out). */
function hasAny(object: Record<string, string>): boolean {
  for (const _ in object) return true;
  return false;
}

/** The client options producers of a transport share. */
export type ProducerBase = ProducerOptions<Buffer, Buffer, Buffer, Buffer>;

/** Places records on partitions: murmur2 of the key, round-robin per topic without one. */
export class Placement {
  readonly #client: PlatformaticProducer<Buffer, Buffer, Buffer, Buffer>;
  readonly #counts = new Map<string, number>();
  readonly #roundRobin = new Map<string, number>();

  constructor(client: PlatformaticProducer<Buffer, Buffer, Buffer, Buffer>) {
    this.#client = client;
  }

  /** Learns the partition counts of the records' topics not seen yet (one metadata request). */
  async learn(records: readonly { readonly topic: string }[]): Promise<void> {
    // The usual case, every topic known, makes no array.
    let known = true;
    for (const record of records) {
      if (!this.#counts.has(record.topic)) {
        known = false;
        break;
      }
    }
    if (known) return;
    const missing = [...new Set(records.map((record) => record.topic))].filter((topic) =>
      !this.#counts.has(topic)
    );
    const metadata = await this.#client.metadata({ topics: missing });
    for (const topic of missing) {
      const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
      if (count < 1) {
        throw new PipelineError(`Cannot send records to topic "${topic}": it has no partitions`, {
          topic,
        });
      }
      this.#counts.set(topic, count);
    }
  }

  /** Forgets what was learnt, e.g. after a failure that may mean the topics changed. */
  forget(): void {
    this.#counts.clear();
  }

  /** The client's messages for `records`, each with its partition; call `learn` first. */
  messages(records: readonly OutgoingRecord[]): MessageToProduce<Buffer, Buffer, Buffer, Buffer>[] {
    return records.map((record) => {
      // A text key is encoded once (Buffer.from: about twice as fast as TextEncoder here): the
      // same bytes are hashed and sent.
      const key = toBuffer(record.key);
      const count = this.#counts.get(record.topic)!;
      let partition: number;
      if (record.partition !== undefined) {
        if (
          !(Number.isInteger(record.partition) && record.partition >= 0 &&
            record.partition < count)
        ) {
          throw new PipelineError(
            `Cannot send record to topic "${record.topic}" as 'partition' must be an integer ` +
              `from 0 to ${count - 1}: current value is ${record.partition}`,
            { topic: record.topic, field: "partition" },
          );
        }
        partition = record.partition;
      } else if (key === undefined) {
        const next = this.#roundRobin.get(record.topic) ?? 0;
        this.#roundRobin.set(record.topic, next + 1);
        partition = next % count;
      } else {
        partition = partitionForKey(key, count);
      }
      const headers = record.headers && hasAny(record.headers)
        ? new Map(
          Object.entries(record.headers).map(([name, value]) => [
            Buffer.from(name, "utf8"),
            Buffer.from(value, "utf8"),
          ]),
        )
        : undefined;
      return {
        topic: record.topic,
        partition,
        key,
        value: toBuffer(record.value),
        headers,
      } as MessageToProduce<Buffer, Buffer, Buffer, Buffer>;
    });
  }
}

/** One report per record: its partition's base offset plus the records before it there. */
export function reportsFor(
  messages: readonly MessageToProduce<Buffer, Buffer, Buffer, Buffer>[],
  offsets: readonly { topic: string; partition: number; offset: bigint }[],
): DeliveryReport[] {
  // By topic, then by partition number: no string key made and hashed per record.
  const base = new Map<string, { first: number[]; seen: number[] }>();
  for (const entry of offsets) {
    let topic = base.get(entry.topic);
    if (topic === undefined) base.set(entry.topic, topic = { first: [], seen: [] });
    topic.first[entry.partition] = Number(entry.offset);
    topic.seen[entry.partition] = 0;
  }
  return messages.map((message, index) => {
    const partition = message.partition!;
    const topic = base.get(message.topic);
    const first = topic?.first[partition];
    if (topic === undefined || first === undefined || Number.isNaN(first) || first < 0) {
      throw new PipelineError(
        `Cannot report delivery of record ${index} to topic "${message.topic}": ` +
          `the broker response has no offset for partition ${partition}`,
        { topic: message.topic, partition },
      );
    }
    const before = topic.seen[partition];
    topic.seen[partition] = before + 1;
    return { topic: message.topic, partition, offset: first + before };
  });
}

/** Opens an idempotent producer. */
export function openProducer(base: ProducerBase, brokers: readonly string[]): Producer {
  const client = new PlatformaticProducer<Buffer, Buffer, Buffer, Buffer>({
    ...base,
    idempotent: true,
    acks: ProduceAcks.ALL,
    autocreateTopics: false,
  });
  const placement = new Placement(client);
  let closed: Promise<void> | undefined;

  async function send(records: readonly OutgoingRecord[]): Promise<DeliveryReport[]> {
    if (closed) throw new PipelineError("Cannot send records: the producer is closed");
    if (records.length === 0) return [];
    try {
      await placement.learn(records);
      const messages = placement.messages(records);
      const result = await client.send({ messages, acks: ProduceAcks.ALL });
      return reportsFor(messages, result.offsets ?? []);
    } catch (error) {
      placement.forget();
      const topics = [...new Set(records.map((record) => `"${record.topic}"`))].join(", ");
      throw toPipelineError(`Cannot send records to ${topics}`, brokers, error, {
        topic: records[0].topic,
      });
    }
  }

  function close(): Promise<void> {
    closed ??= client.close().catch(() => undefined);
    return closed;
  }

  return { send, close };
}

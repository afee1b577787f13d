/**
 * The kafkajs producer behind {@linkcode Producer}: idempotent, acks=all, Kafka's murmur2
 * partitioning, one `sendBatch` per `send`, and one delivery report per record.
 *
 * After a failed send the kafkajs producer is replaced by a new one (a new producer id, fresh
 * sequence numbers) before anything else is sent. kafkajs rolls back the sequence numbers of
 * every partition of a failed request, also of partitions the broker did write
 * (`src/producer/sendMessages.js`); reused, it would send the next batch to such a partition
 * with numbers the broker has seen, and the broker would acknowledge it as a duplicate without
 * writing it. Sends are serialised, so none can start on the old producer after a failure.
 * What the failed send carried is the caller's to send again (at-least-once).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import kafkajs from "kafkajs";
import type {
  Kafka,
  Message,
  PartitionerArgs,
  Producer as KafkaProducer,
  RecordMetadata,
} from "kafkajs";
import { PipelineError } from "../../errors.ts";
import type { DeliveryReport, OutgoingRecord, Producer } from "../transport.ts";
import { toPipelineError } from "./_errors.ts";

const { Partitioners } = kafkajs;

/** Bytes or text as kafkajs wants it: a Buffer (a bare Uint8Array would be stringified). */
export function toWire(data: Uint8Array | string | null): Buffer | string | null {
  if (data === null || typeof data === "string") return data;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Kafka's default partitioner (murmur2 of the key bytes, round-robin without a key), wrapped to
 * remember each message's partition. kafkajs calls the partitioner again when it retries a
 * send; remembering keeps an unkeyed record on the partition first chosen, and tells `send`
 * where every record went, which the produce response alone does not.
 */
function recordingPartitioner(chosen: WeakMap<Message, number>) {
  return function createRecordingPartitioner() {
    const partitioner = Partitioners.DefaultPartitioner();
    return function recordPartition(args: PartitionerArgs): number {
      const remembered = chosen.get(args.message);
      if (remembered !== undefined && remembered < args.partitionMetadata.length) {
        return remembered;
      }
      const partition = partitioner(args);
      chosen.set(args.message, partition);
      return partition;
    };
  };
}

function reportsFor(
  records: readonly OutgoingRecord[],
  messages: readonly Message[],
  chosen: WeakMap<Message, number>,
  responses: readonly RecordMetadata[],
): DeliveryReport[] {
  const baseOffsets = new Map<string, number>();
  for (const response of responses) {
    baseOffsets.set(`${response.topicName}\0${response.partition}`, Number(response.baseOffset));
  }
  // kafkajs keeps each partition's records in the order given, so a record's offset is the
  // partition's base offset plus the number of records before it on that partition.
  const seen = new Map<string, number>();
  return records.map((record, index) => {
    const partition = chosen.get(messages[index]);
    const key = `${record.topic}\0${partition}`;
    const base = baseOffsets.get(key);
    if (partition === undefined || base === undefined || Number.isNaN(base)) {
      throw new PipelineError(
        `Cannot report delivery of record ${index} to topic "${record.topic}": ` +
          `the broker response has no offset for partition ${partition}`,
        { topic: record.topic, partition },
      );
    }
    const before = seen.get(key) ?? 0;
    seen.set(key, before + 1);
    return { topic: record.topic, partition, offset: base + before };
  });
}

/** A producer of the transport, and how many kafkajs producers it has started. */
export interface KafkaTransportProducer extends Producer {
  /** kafkajs producers started so far: 1, plus one per send that failed. */
  readonly generations: number;
}

/** Opens an idempotent kafkajs producer and connects it. */
export async function openProducer(
  kafka: Kafka,
  brokers: readonly string[],
): Promise<KafkaTransportProducer> {
  const chosen = new WeakMap<Message, number>();
  async function start(): Promise<KafkaProducer> {
    const producer = kafka.producer({
      // No `retry` here: kafkajs 2.2.4 merges the client's retry settings into an object before
      // its idempotent default (unbounded retries) is consulted, so sends retry 5 times with
      // backoff (about 10 s) and then fail, which the runtime reports; setting `retries`
      // explicitly would only add a startup warning.
      idempotent: true,
      // kafkajs serialises produce requests per broker for idempotence; one in flight keeps
      // sequence numbers in order even if that changes.
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: recordingPartitioner(chosen),
    });
    try {
      await producer.connect();
    } catch (error) {
      throw toPipelineError("Cannot connect the Kafka producer", brokers, error);
    }
    return producer;
  }
  let current = await start();
  let generations = 1;
  /** Set by a failed send: the next send starts a new producer first. */
  let spoiled = false;
  /** The last send's settling; each send waits for it (sends are serialised). */
  let previous: Promise<unknown> = Promise.resolve();
  let closed: Promise<void> | undefined;

  async function renew(): Promise<void> {
    const old = current;
    // The old producer's sequence numbers are unusable; a failure to say goodbye is not the
    // next send's concern.
    await old.disconnect().catch(() => undefined);
    current = await start();
    generations++;
    spoiled = false;
  }

  async function sendNow(records: readonly OutgoingRecord[]): Promise<DeliveryReport[]> {
    if (spoiled) await renew();
    const messages: Message[] = records.map((record) => ({
      key: toWire(record.key),
      value: toWire(record.value),
      // kafkajs' default partitioner honours a message's own partition.
      partition: record.partition,
      headers: record.headers ? { ...record.headers } : undefined,
    }));
    const byTopic = new Map<string, Message[]>();
    records.forEach((record, index) => {
      const list = byTopic.get(record.topic) ?? [];
      list.push(messages[index]);
      byTopic.set(record.topic, list);
    });
    let responses: RecordMetadata[];
    try {
      responses = await current.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list })),
      });
    } catch (error) {
      spoiled = true;
      const topics = [...byTopic.keys()].map((topic) => `"${topic}"`).join(", ");
      throw toPipelineError(`Cannot send records to ${topics}`, brokers, error, {
        topic: records[0].topic,
      });
    }
    return reportsFor(records, messages, chosen, responses);
  }

  function send(records: readonly OutgoingRecord[]): Promise<DeliveryReport[]> {
    if (closed) {
      return Promise.reject(new PipelineError("Cannot send records: the producer is closed"));
    }
    if (records.length === 0) return Promise.resolve([]);
    const sent = previous.then(() => sendNow(records));
    previous = sent.catch(() => undefined);
    return sent;
  }

  function close(): Promise<void> {
    closed ??= previous.then(() => current.disconnect());
    return closed;
  }

  return {
    send,
    close,
    get generations(): number {
      return generations;
    },
  };
}

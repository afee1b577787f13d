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
import type {
  Kafka,
  Message,
  PartitionerArgs,
  Producer as KafkaProducer,
  RecordMetadata,
} from "kafkajs";
import { PipelineError } from "../../errors.ts";
import type { DeliveryReport, OutgoingRecord, Producer } from "../transport.ts";
import { murmur2, toPositive } from "../murmur2.ts";
import { toPipelineError } from "./_errors.ts";

const encoder = new TextEncoder();

/** Bytes or text as kafkajs wants it: a Buffer (a bare Uint8Array would be stringified). */
export function toWire(data: Uint8Array | string | null): Buffer | string | null {
  if (data === null || typeof data === "string") return data;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Kafka's default placement, computed once per message and written on it: the message's own
 * partition if it has one, else murmur2 of the key bytes (`../murmur2.ts`, the Java client's
 * and kafkajs's placement, without kafkajs's 64-bit `Long` arithmetic), else round-robin over
 * the partitions with a leader. kafkajs calls the partitioner again when it retries a send: the
 * written partition keeps the message where it was first placed, and tells `send` where every
 * record went, which the produce response alone does not.
 */
function placingPartitioner() {
  const roundRobin = new Map<string, number>();
  return function placeMessage({ topic, partitionMetadata, message }: PartitionerArgs): number {
    if (message.partition !== undefined && message.partition !== null) return message.partition;
    const { key } = message;
    let partition: number;
    if (key !== undefined && key !== null) {
      partition = toPositive(murmur2(typeof key === "string" ? encoder.encode(key) : key)) %
        partitionMetadata.length;
    } else {
      const available = partitionMetadata.filter((p) => p.leader >= 0);
      const candidates = available.length > 0 ? available : partitionMetadata;
      const next = roundRobin.get(topic) ?? Math.floor(Math.random() * candidates.length);
      roundRobin.set(topic, next + 1);
      partition = candidates[next % candidates.length].partitionId;
    }
    message.partition = partition;
    return partition;
  };
}

/** Whether an object has an own enumerable property (no array of entries made to find out). */
function hasAny(object: Record<string, string>): boolean {
  for (const _ in object) return true;
  return false;
}

function reportsFor(
  records: readonly OutgoingRecord[],
  messages: readonly Message[],
  responses: readonly RecordMetadata[],
): DeliveryReport[] {
  /** Per topic, per partition: the next record's offset. */
  const next = new Map<string, Map<number, number>>();
  for (const response of responses) {
    let partitions = next.get(response.topicName);
    if (partitions === undefined) next.set(response.topicName, partitions = new Map());
    partitions.set(response.partition, Number(response.baseOffset));
  }
  // kafkajs keeps each partition's records in the order given, so a record's offset is the
  // partition's base offset plus the number of records before it on that partition.
  const reports = new Array<DeliveryReport>(records.length);
  for (let index = 0; index < records.length; index++) {
    const { topic } = records[index];
    const partition = messages[index].partition;
    const partitions = next.get(topic);
    const offset = partition === undefined ? undefined : partitions?.get(partition);
    if (partition === undefined || offset === undefined || Number.isNaN(offset)) {
      throw new PipelineError(
        `Cannot report delivery of record ${index} to topic "${topic}": ` +
          `the broker response has no offset for partition ${partition}`,
        { topic, partition },
      );
    }
    partitions!.set(partition, offset + 1);
    reports[index] = { topic, partition, offset };
  }
  return reports;
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
      createPartitioner: placingPartitioner,
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
    const messages = new Array<Message>(records.length);
    const byTopic = new Map<string, Message[]>();
    for (let index = 0; index < records.length; index++) {
      const record = records[index];
      // The partitioner writes each message's partition on it: a fresh message per send.
      const message: Message = {
        key: toWire(record.key),
        value: toWire(record.value),
        partition: record.partition,
        headers: record.headers && hasAny(record.headers) ? { ...record.headers } : undefined,
      };
      messages[index] = message;
      const list = byTopic.get(record.topic);
      if (list === undefined) byTopic.set(record.topic, [message]);
      else list.push(message);
    }
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
    return reportsFor(records, messages, responses);
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

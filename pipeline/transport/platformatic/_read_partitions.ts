/**
 * Reading partitions of a topic to their end without joining the caller's group: what a member
 * restoring state from a changelog needs. As in the kafkajs transport, the reader is a consumer
 * in a group of its own (`<clientId>.restore.<uuid>`) that never commits; it takes every
 * partition of the topic and keeps only the records of the partitions asked for, up to their
 * end offsets at the time of the call. A partition is done once its record at end - 1 was read
 * or the stream's fetch position passed its end (a compacted-away or transaction-marker tail).
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { Consumer as PlatformaticConsumer, type Message } from "@platformatic/kafka";
import { PipelineError } from "../../errors.ts";
import type { ConsumedRecord, TopicOffsets } from "../transport.ts";
import type { ClientBase } from "./_consumer.ts";
import { toRecord } from "./_consumer.ts";
import { toPipelineError } from "./_errors.ts";
import { READ_FETCH_BYTES, READ_FETCH_PARTITION_BYTES } from "../_consumer_options.ts";

/** What to read, and where each record goes. */
export interface ReadRequest {
  /** The topic. */
  readonly topic: string;
  /** Its partitions to read. */
  readonly partitions: readonly number[];
  /** Called for every record, in offset order per partition. */
  readonly each: (record: ConsumedRecord) => void;
  /** Aborts the read. */
  readonly signal?: AbortSignal;
}

/** Reads `partitions` of `topic` from their start to their end offsets now. */
export async function readPartitions(
  base: ClientBase,
  brokers: readonly string[],
  offsets: TopicOffsets,
  request: ReadRequest,
): Promise<void> {
  const { topic, each, signal } = request;
  signal?.throwIfAborted();
  /** Per partition still to read, the offset to read up to (exclusive). */
  const ends = new Map<number, number>();
  for (const partition of request.partitions) {
    const end = offsets.end.find((o) => o.partition === partition)?.offset;
    const start = offsets.start.find((o) => o.partition === partition)?.offset;
    if (end === undefined || start === undefined) {
      throw new PipelineError(
        `Cannot read partition ${partition} of topic "${topic}": no such partition`,
        { topic, partition },
      );
    }
    if (end > start) ends.set(partition, end);
  }
  if (ends.size === 0) return;
  const client = new PlatformaticConsumer<Buffer, Buffer, Buffer, Buffer>({
    ...base,
    groupId: `${base.clientId}.restore.${crypto.randomUUID()}`,
    autocommit: false,
  });
  let finish!: () => void;
  let fail!: (error: unknown) => void;
  const finished = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const onAbort = () => fail(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  function done(partition: number): void {
    if (!ends.delete(partition)) return;
    if (ends.size === 0) finish();
  }
  try {
    const stream = await client.consume({
      topics: [topic],
      mode: "earliest",
      autocommit: false,
      maxWaitTime: 100,
      maxBytes: READ_FETCH_BYTES,
      maxBytesPerPartition: READ_FETCH_PARTITION_BYTES,
    });
    stream.on("error", fail);
    // The fetch position passes a partition's end even when its last records are gone (compacted
    // away, or transaction markers): once every fetched record was read, that partition is done.
    const passedEnds = (): void => {
      if (stream.readableLength > 0) return;
      for (const [partition, end] of ends) {
        const next = stream.offsetsToFetch.get(`${topic}:${partition}`);
        if (next !== undefined && Number(next) >= end) done(partition);
      }
    };
    stream.on("fetch", () => queueMicrotask(passedEnds));
    const pump = (async function read() {
      for await (
        const message of stream as AsyncIterable<Message<Buffer, Buffer, Buffer, Buffer>>
      ) {
        const end = ends.get(message.partition);
        if (end !== undefined) {
          const offset = Number(message.offset);
          if (offset < end) each(toRecord(message));
          if (offset + 1 >= end) done(message.partition);
        }
        if (ends.size === 0) break;
        passedEnds();
      }
    })();
    pump.catch(fail);
    try {
      await finished;
    } finally {
      await stream.close().catch(() => undefined);
      await pump.catch(() => undefined);
    }
  } catch (error) {
    if (signal?.aborted) throw error;
    throw toPipelineError(`Cannot read topic "${topic}" to its end`, brokers, error, { topic });
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await client.close(true).catch(() => undefined);
  }
}

/**
 * Topic provisioning and offset queries over the @platformatic/kafka admin client.
 *
 * @module
 */
import type { Admin } from "@platformatic/kafka";
import { FindCoordinatorKeyTypes, ListOffsetTimestamps } from "@platformatic/kafka";
import { PipelineError } from "../../errors.ts";
import type { PartitionOffset, TopicOffsets, TopicSpec } from "../transport.ts";
import {
  type TopicWarning,
  validateTopicSpec,
  waitForTopics,
  warnAboutShortfalls,
} from "../_topic_spec.ts";
import { protocolIds } from "./_errors.ts";

/** Settings {@linkcode ensureTopics} needs from the transport options. */
export interface EnsureTopicsSettings {
  /** The replication factor of topics whose spec sets none. */
  readonly replicationFactor: number;
  /** How long to wait for new topics to show up in metadata, in milliseconds. */
  readonly readyTimeout: number;
  /** Receives a warning per existing topic with fewer partitions or replicas than declared. */
  readonly onWarning: (warning: TopicWarning) => void;
}

/** The partition count of a topic, from fresh metadata. */
export async function partitionCount(admin: Admin, topic: string): Promise<number> {
  const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
  const found = metadata.topics.get(topic);
  if (found === undefined) {
    throw new PipelineError(`Cannot find topic "${topic}" in the broker metadata`, { topic });
  }
  return found.partitionsCount;
}

/** Whether every topic has a leader for each partition and answers offset requests. */
async function topicsReady(admin: Admin, specs: readonly TopicSpec[]): Promise<boolean> {
  try {
    const names = specs.map((spec) => spec.name);
    const metadata = await admin.metadata({ topics: names, forceUpdate: true });
    const led = specs.every((spec) => {
      const found = metadata.topics.get(spec.name);
      return found !== undefined && found.partitions.length > 0 &&
        found.partitions.every((partition) => partition.leader >= 0);
    });
    if (!led) return false;
    await Promise.all(specs.map((spec) => endOffsets(admin, spec.name)));
    return true;
  } catch {
    // A topic not in the metadata yet fails the request: poll again.
    return false;
  }
}

/** Compares existing topics with their specs and warns about each shortfall. */
async function checkExisting(
  admin: Admin,
  specs: readonly TopicSpec[],
  settings: EnsureTopicsSettings,
): Promise<void> {
  if (specs.length === 0) return;
  const metadata = await admin.metadata({ topics: specs.map((s) => s.name), forceUpdate: true });
  warnAboutShortfalls(
    specs,
    (name) => metadata.topics.get(name)?.partitions,
    settings.replicationFactor,
    settings.onWarning,
  );
}

/**
 * Creates the topics that do not exist yet (existing ones are left alone, with a warning for
 * each that has fewer partitions or replicas than declared), then waits until every topic has
 * a leader for each partition.
 */
export async function ensureTopics(
  admin: Admin,
  specs: readonly TopicSpec[],
  settings: EnsureTopicsSettings,
): Promise<void> {
  specs.forEach(validateTopicSpec);
  if (specs.length === 0) return;
  const existing = new Set(await admin.listTopics());
  await checkExisting(admin, specs.filter((spec) => existing.has(spec.name)), settings);
  for (const spec of specs.filter((spec) => !existing.has(spec.name))) {
    try {
      await admin.createTopics({
        topics: [spec.name],
        partitions: spec.partitions,
        replicas: spec.replicationFactor ?? settings.replicationFactor,
        configs: Object.entries(spec.config ?? {}).map(([name, value]) => ({ name, value })),
      });
    } catch (error) {
      // Another client (a process starting beside this one) may have created it meanwhile:
      // that is fine. Its metadata may not list the topic yet, so the broker's answer decides.
      if (protocolIds(error).includes("TOPIC_ALREADY_EXISTS")) continue;
      if (!(await admin.listTopics()).includes(spec.name)) throw error;
    }
  }
  await waitForTopics(specs, settings.readyTimeout, () => topicsReady(admin, specs));
}

async function listOffsets(admin: Admin, topic: string, timestamp: bigint): Promise<number[]> {
  const count = await partitionCount(admin, topic);
  const partitions = Array.from({ length: count }, (_, partitionIndex) => ({
    partitionIndex,
    timestamp,
  }));
  const [listed] = await admin.listOffsets({ topics: [{ name: topic, partitions }] });
  const offsets = new Array<number>(count).fill(0);
  for (const entry of listed?.partitions ?? []) {
    offsets[entry.partitionIndex] = Number(entry.offset);
  }
  return offsets;
}

/** The high and low watermarks of each partition of `topic`, in partition order. */
export async function endOffsets(admin: Admin, topic: string): Promise<TopicOffsets> {
  const [high, low] = await Promise.all([
    listOffsets(admin, topic, ListOffsetTimestamps.LATEST),
    listOffsets(admin, topic, ListOffsetTimestamps.EARLIEST),
  ]);
  return {
    topic,
    end: high.map((offset, partition) => ({ partition, offset })),
    start: low.map((offset, partition) => ({ partition, offset })),
  };
}

/** The offsets `groupId` committed on each partition of `topic`; never committed reads 0. */
export async function committedOffsets(
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<PartitionOffset[]> {
  const count = await partitionCount(admin, topic);
  const partitionIndexes = Array.from({ length: count }, (_, index) => index);
  const [group] = await admin.listConsumerGroupOffsets({
    groups: [{ groupId, topics: [{ name: topic, partitionIndexes }] }],
  });
  const offsets = new Array<number>(count).fill(0);
  for (const entry of group?.topics ?? []) {
    if (entry.name !== topic) continue;
    for (const partition of entry.partitions) {
      const offset = Number(partition.committedOffset);
      offsets[partition.partitionIndex] = offset < 0 ? 0 : offset;
    }
  }
  return offsets.map((offset, partition) => ({ partition, offset }));
}

/** The node id of the coordinator of a consumer group. */
export async function groupCoordinator(admin: Admin, groupId: string): Promise<number> {
  const [found] = await admin.findCoordinator({
    keyType: FindCoordinatorKeyTypes.GROUP,
    keys: [groupId],
  });
  if (found === undefined) {
    throw new PipelineError(`Cannot find the coordinator of consumer group "${groupId}"`);
  }
  return found.nodeId;
}

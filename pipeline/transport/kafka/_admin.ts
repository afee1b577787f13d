/**
 * Topic provisioning and offset queries over the kafkajs admin client.
 *
 * @module
 */
import type { Admin } from "kafkajs";
import type { PartitionOffset, TopicOffsets, TopicSpec } from "../transport.ts";
import {
  type TopicWarning,
  validateTopicSpec,
  waitForTopics,
  warnAboutShortfalls,
} from "../_topic_spec.ts";

export type { TopicWarning };

/** Settings {@linkcode ensureTopics} needs from the transport options. */
export interface EnsureTopicsSettings {
  /** The replication factor of topics whose spec sets none. */
  readonly replicationFactor: number;
  /** How long to wait for new topics to show up in metadata, in milliseconds. */
  readonly readyTimeout: number;
  /** Receives a warning per existing topic with fewer partitions or replicas than declared. */
  readonly onWarning: (warning: TopicWarning) => void;
}

/** Whether every topic is in the metadata with a leader for each of its partitions. */
async function topicsReady(admin: Admin, specs: readonly TopicSpec[]): Promise<boolean> {
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: specs.map((spec) => spec.name) });
    return specs.every((spec) => {
      const found = topics.find((topic) => topic.name === spec.name);
      return found !== undefined && found.partitions.length > 0 &&
        found.partitions.every((partition) => partition.leader >= 0);
    }) &&
      // Metadata can name a leader before that leader serves the partition ("not the leader
      // for that topic-partition" on the first ListOffsets); ready means offsets answer too.
      (await Promise.all(specs.map((spec) => admin.fetchTopicOffsets(spec.name)))).length > 0;
  } catch {
    // A topic that is not in the metadata yet makes the whole request fail: poll again.
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
  const { topics } = await admin.fetchTopicMetadata({ topics: specs.map((spec) => spec.name) });
  warnAboutShortfalls(
    specs,
    (name) => topics.find((topic) => topic.name === name)?.partitions,
    settings.replicationFactor,
    settings.onWarning,
  );
}

/**
 * Creates the topics that do not exist yet (existing ones are left alone, with a warning for
 * each that has fewer partitions or replicas than declared), then waits until every topic has
 * a leader for each partition, so producers do not meet `UNKNOWN_TOPIC`.
 */
export async function ensureTopics(
  admin: Admin,
  specs: readonly TopicSpec[],
  settings: EnsureTopicsSettings,
): Promise<void> {
  specs.forEach(validateTopicSpec);
  if (specs.length === 0) return;
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((spec) => !existing.has(spec.name));
  await checkExisting(admin, specs.filter((spec) => existing.has(spec.name)), settings);
  if (missing.length > 0) {
    // Resolves false when another client created one of them first: that is fine.
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((spec) => ({
        topic: spec.name,
        numPartitions: spec.partitions,
        replicationFactor: spec.replicationFactor ?? settings.replicationFactor,
        configEntries: Object.entries(spec.config ?? {}).map(([name, value]) => ({ name, value })),
      })),
    });
  }
  await waitForTopics(specs, settings.readyTimeout, () => topicsReady(admin, specs));
}

/** The high and low watermarks of each partition of `topic`, in partition order. */
export async function endOffsets(admin: Admin, topic: string): Promise<TopicOffsets> {
  const offsets = [...await admin.fetchTopicOffsets(topic)]
    .sort((a, b) => a.partition - b.partition);
  const end = offsets.map((entry) => ({ partition: entry.partition, offset: Number(entry.high) }));
  const start = offsets.map((entry) => ({ partition: entry.partition, offset: Number(entry.low) }));
  return { topic, end, start };
}

/** The offsets `groupId` committed on each partition of `topic`; never committed reads 0. */
export async function committedOffsets(
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<PartitionOffset[]> {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const partitions = entry?.partitions ?? [];
  return partitions
    .map((partition) => {
      const offset = Number(partition.offset);
      return { partition: partition.partition, offset: offset < 0 ? 0 : offset };
    })
    .sort((a, b) => a.partition - b.partition);
}

/**
 * A @platformatic/kafka partition assigner that keeps partition p of every subscribed topic on
 * one member, as the kafkajs transport's (`../kafka/_copartitioned_assigner.ts`) does: members
 * sorted by id each take a contiguous range of partition numbers, applied to all topics at once.
 * The protocol name is the kafkajs assigner's, so the group coordinator sees one strategy.
 *
 * @module
 */
import type {
  GroupAssignment,
  GroupPartitionsAssigner,
  GroupPartitionsAssignments,
} from "@platformatic/kafka";

/** The assigner's protocol name, as members announce it to the group coordinator. */
export const COPARTITIONED_ASSIGNER = "CopartitionedRangeAssigner";

/** Assigns contiguous ranges of partition numbers, the same numbers for every topic. */
export const copartitionedAssigner: GroupPartitionsAssigner = function assignCopartitioned(
  _current,
  members,
  topics,
  metadata,
) {
  const sorted = [...members.keys()].sort();
  const counts = new Map(
    [...topics].map((topic) => [topic, metadata.topics.get(topic)?.partitionsCount ?? 0]),
  );
  const numbers = Math.max(0, ...counts.values());
  const each = Math.floor(numbers / sorted.length);
  const extra = numbers % sorted.length;
  return sorted.map((memberId, i): GroupPartitionsAssignments => {
    const start = i * each + Math.min(i, extra);
    const end = start + each + (i < extra ? 1 : 0);
    const assignments = new Map<string, GroupAssignment>();
    for (const [topic, count] of counts) {
      const partitions: number[] = [];
      for (let p = start; p < Math.min(end, count); p++) partitions.push(p);
      if (partitions.length > 0) assignments.set(topic, { topic, partitions });
    }
    return { memberId, assignments };
  });
};

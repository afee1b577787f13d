/**
 * A kafkajs partition assigner that keeps partition p of every subscribed topic on one member:
 * a stage's input and its retry tiers (same partition count) form one task per partition
 * number, and that task's state lives on the member that owns it. Members are sorted by id and
 * each takes a contiguous range of partition numbers, as Kafka's range assignor does, applied
 * to all topics at once. The embedded group's `rangeAssign` gives the same shape.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import kafkajs from "kafkajs";
import type { PartitionAssigner } from "kafkajs";

const { AssignerProtocol } = kafkajs;

/** The assigner's protocol name, as members announce it to the group coordinator. */
export const COPARTITIONED_ASSIGNER = "CopartitionedRangeAssigner";

/** Creates the co-partitioned assigner (a kafkajs `PartitionAssigner`). */
export const copartitionedAssigner: PartitionAssigner = function createCopartitionedAssigner(
  { cluster },
) {
  return {
    name: COPARTITIONED_ASSIGNER,
    version: 0,
    // deno-lint-ignore require-await -- kafkajs awaits assign(); nothing here is asynchronous.
    async assign({ members, topics }) {
      const sorted = members.map(({ memberId }) => memberId).sort();
      const counts = new Map(
        topics.map((topic) => [topic, cluster.findTopicPartitionMetadata(topic).length]),
      );
      const numbers = Math.max(0, ...counts.values());
      const each = Math.floor(numbers / sorted.length);
      const extra = numbers % sorted.length;
      return sorted.map((memberId, i) => {
        const start = i * each + Math.min(i, extra);
        const end = start + each + (i < extra ? 1 : 0);
        const assignment: Record<string, number[]> = {};
        for (const [topic, count] of counts) {
          const owned: number[] = [];
          for (let p = start; p < Math.min(end, count); p++) owned.push(p);
          if (owned.length > 0) assignment[topic] = owned;
        }
        return {
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({
            version: 0,
            assignment,
            userData: Buffer.alloc(0),
          }),
        };
      });
    },
    protocol({ topics }) {
      return {
        name: COPARTITIONED_ASSIGNER,
        metadata: AssignerProtocol.MemberMetadata.encode({
          version: 0,
          topics,
          userData: Buffer.alloc(0),
        }),
      };
    },
  };
};

/**
 * The embedded group coordinator: which member of a consumer group owns which partition, and
 * what the group committed. Membership changes are handled one at a time; each one revokes
 * what members lose (waiting for them to stop and commit) before anyone gets a new partition,
 * so a partition is never read by two members at once.
 *
 * @module
 */

import type { TopicPartition } from "../transport.ts";

export type { TopicPartition } from "../transport.ts";

/** What the coordinator needs from a member (the embedded consumer). */
export interface GroupMember {
  /** The topics the member subscribes to. */
  readonly topics: readonly string[];
  /**
   * Stops reading these partitions, waits for their records in flight and commits what they
   * completed. Must not reject.
   */
  revoke(partitions: readonly TopicPartition[]): Promise<void>;
  /** The member now owns `partitions` (its whole set, not a delta). */
  assign(partitions: readonly TopicPartition[]): void;
}

function sameTopicPartition(a: TopicPartition, b: TopicPartition): boolean {
  return a.topic === b.topic && a.partition === b.partition;
}

function without(
  partitions: readonly TopicPartition[],
  removed: readonly TopicPartition[],
): TopicPartition[] {
  return partitions.filter((p) => !removed.some((r) => sameTopicPartition(p, r)));
}

/**
 * Range assignment per topic, over the topic's subscribers in join order: with 3 partitions
 * and 2 members, the first gets [0, 1] and the second [2]. Deterministic, and a member that
 * joins later only takes partitions from the end.
 */
export function rangeAssign(
  members: readonly GroupMember[],
  partitionsOf: (topic: string) => number,
): Map<GroupMember, TopicPartition[]> {
  const result = new Map<GroupMember, TopicPartition[]>(members.map((m) => [m, []]));
  const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
  for (const topic of topics) {
    const subscribers = members.filter((m) => m.topics.includes(topic));
    const count = partitionsOf(topic);
    const each = Math.floor(count / subscribers.length);
    const extra = count % subscribers.length;
    subscribers.forEach((member, i) => {
      const start = i * each + Math.min(i, extra);
      const length = each + (i < extra ? 1 : 0);
      for (let partition = start; partition < start + length; partition++) {
        result.get(member)!.push({ topic, partition });
      }
    });
  }
  return result;
}

/** One consumer group: members in join order, their partitions, and committed offsets. */
export class ConsumerGroup {
  readonly groupId: string;
  readonly #partitionsOf: (topic: string) => number;
  readonly #members: GroupMember[] = [];
  readonly #owned = new Map<GroupMember, TopicPartition[]>();
  readonly #committed = new Map<string, Map<number, number>>();
  #queue: Promise<void> = Promise.resolve();

  constructor(groupId: string, partitionsOf: (topic: string) => number) {
    this.groupId = groupId;
    this.#partitionsOf = partitionsOf;
  }

  /** Adds a member and resolves once the group has rebalanced around it. */
  join(member: GroupMember): Promise<void> {
    return this.#serialise(() => {
      this.#members.push(member);
      return this.#rebalance();
    });
  }

  /** Removes a member and resolves once its partitions are handed to the others. */
  leave(member: GroupMember): Promise<void> {
    return this.#serialise(async () => {
      const index = this.#members.indexOf(member);
      if (index < 0) return;
      this.#members.splice(index, 1);
      await this.#rebalance();
      this.#owned.delete(member);
    });
  }

  /** Records `offset` (the next offset to read) as the group's position in a partition. */
  commit(topic: string, partition: number, offset: number): void {
    let byPartition = this.#committed.get(topic);
    if (byPartition === undefined) {
      byPartition = new Map();
      this.#committed.set(topic, byPartition);
    }
    byPartition.set(partition, offset);
  }

  /** The committed offset of a partition, or `undefined` if the group never committed one. */
  committed(topic: string, partition: number): number | undefined {
    return this.#committed.get(topic)?.get(partition);
  }

  #serialise(operation: () => Promise<void>): Promise<void> {
    const result = this.#queue.then(operation);
    // The caller sees a failure through `result`; the queue itself must keep going.
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #rebalance(): Promise<void> {
    const target = rangeAssign(this.#members, this.#partitionsOf);
    const revocations: Promise<void>[] = [];
    for (const [member, owned] of this.#owned) {
      const lost = without(owned, target.get(member) ?? []);
      if (lost.length === 0) continue;
      this.#owned.set(member, without(owned, lost));
      revocations.push(member.revoke(lost));
    }
    await Promise.all(revocations);
    for (const [member, partitions] of target) {
      this.#owned.set(member, partitions);
      member.assign(partitions);
    }
  }
}

/** Every consumer group of one embedded transport. */
export class GroupCoordinator {
  readonly #groups = new Map<string, ConsumerGroup>();
  readonly #partitionsOf: (topic: string) => number;

  constructor(partitionsOf: (topic: string) => number) {
    this.#partitionsOf = partitionsOf;
  }

  /** The group of that id, created empty on first use. */
  group(groupId: string): ConsumerGroup {
    let group = this.#groups.get(groupId);
    if (group === undefined) {
      group = new ConsumerGroup(groupId, this.#partitionsOf);
      this.#groups.set(groupId, group);
    }
    return group;
  }

  /** The group of that id if it was ever used. */
  find(groupId: string): ConsumerGroup | undefined {
    return this.#groups.get(groupId);
  }
}

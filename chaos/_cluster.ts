/**
 * The broker's side of the fault suite, asked through an admin client: topics made before
 * anything writes to them, the group's members, and its lag (committed offsets against the
 * log end offsets: the broker's own numbers, not the runtime's counters).
 *
 * @module
 */
import kafkajs from "kafkajs";
import type { Admin } from "kafkajs";
import { dropTimeoutNegativeWarnings } from "../infra/kafka/mod.ts";
import { ChaosError } from "./errors.ts";
import type { LagReading } from "./verify.ts";

const { Kafka, logLevel } = kafkajs;

/** An admin connection, reconnected on demand (the broker is restarted under it). */
export interface Cluster {
  /** Creates `topic` with `partitions` unless it exists. */
  createTopic(topic: string, partitions: number): Promise<void>;
  /** Whether `topic` exists. */
  hasTopic(topic: string): Promise<boolean>;
  /** The group's lag on `topics` (a partition without a committed offset counts whole). */
  lag(group: string, topics: readonly string[]): Promise<LagReading>;
  /** How many members the group has now (0 while it is empty or rebalancing). */
  members(group: string): Promise<number>;
  /** Disconnects. */
  close(): Promise<void>;
}

/** Connects an admin client to `brokers`. */
export function connectCluster(brokers: string): Cluster {
  dropTimeoutNegativeWarnings();
  const kafka = new Kafka({
    clientId: "chaos-suite",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
    retry: { retries: 3 },
  });
  let admin: Admin | undefined;
  const connected = async (): Promise<Admin> => {
    if (admin === undefined) {
      const fresh = kafka.admin();
      await fresh.connect();
      admin = fresh;
    }
    return admin;
  };
  /** Runs `what` once more on a fresh connection when the first try fails. */
  const withAdmin = async <T>(what: string, use: (admin: Admin) => Promise<T>): Promise<T> => {
    try {
      return await use(await connected());
    } catch (first) {
      const stale = admin;
      admin = undefined;
      await stale?.disconnect().catch(() => undefined);
      try {
        return await use(await connected());
      } catch (error) {
        throw new ChaosError(`Cannot ${what} on ${brokers}: ${(error as Error).message}`, {
          cause: error ?? first,
        });
      }
    }
  };
  return {
    createTopic(topic, partitions) {
      return withAdmin(`create topic "${topic}"`, async (a) => {
        await a.createTopics({
          topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
          waitForLeaders: true,
        });
      });
    },
    hasTopic(topic) {
      return withAdmin("list topics", async (a) => (await a.listTopics()).includes(topic));
    },
    lag(group, topics) {
      return withAdmin(`read the lag of group "${group}"`, async (a) => {
        const partitions: { topic: string; partition: number; lag: number }[] = [];
        const committed = await a.fetchOffsets({ groupId: group, topics: [...topics] });
        for (const { topic, partitions: marks } of committed) {
          const ends = await a.fetchTopicOffsets(topic);
          for (const end of ends) {
            const mark = marks.find((m) => m.partition === end.partition);
            const at = Number(mark?.offset ?? "-1");
            const high = Number(end.high);
            const low = Number(end.low);
            partitions.push({
              topic,
              partition: end.partition,
              lag: Math.max(0, high - (at < 0 ? low : at)),
            });
          }
        }
        return { partitions };
      });
    },
    members(group) {
      return withAdmin(`describe group "${group}"`, async (a) => {
        const { groups } = await a.describeGroups([group]);
        const found = groups[0];
        return found?.state === "Stable" ? found.members.length : 0;
      });
    },
    async close() {
      await admin?.disconnect().catch(() => undefined);
      admin = undefined;
    },
  };
}

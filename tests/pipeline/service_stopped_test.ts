import assert from "node:assert/strict";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type { ConsumerStatus, Transport } from "../../pipeline/transport/transport.ts";
import { startService } from "../../pipeline/service.ts";
import { createEchoPipeline } from "./_echo_pipeline.ts";

/**
 * The embedded transport, whose consumers can be told to report what kafkajs reports when it
 * stops a consumer for good (`CRASH` with `restart: false`).
 */
function crashableTransport(): { transport: Transport; crash(restart: boolean): void } {
  const inner = createEmbeddedTransport();
  const reporters: Array<(status: ConsumerStatus) => void> = [];
  const transport: Transport = {
    kind: inner.kind,
    target: inner.target,
    ensureTopics: (topics) => inner.ensureTopics(topics),
    producer: () => inner.producer(),
    consumer(options) {
      if (options.onStatus) reporters.push(options.onStatus);
      return inner.consumer(options);
    },
    endOffsets: (topic) => inner.endOffsets(topic),
    committedOffsets: (group, topic) => inner.committedOffsets(group, topic),
    readPartitions: (topic, partitions, each, signal) =>
      inner.readPartitions(topic, partitions, each, signal),
    transactionalProducer: (options) => inner.transactionalProducer(options),
    close: () => inner.close(),
  };
  return {
    transport,
    crash(restart) {
      for (const report of reporters) {
        report({ type: "crashed", error: new Error("KafkaJSNonRetriableError: boom"), restart });
      }
    },
  };
}

Deno.test({
  name: "startService(): a consumer the client restarts is not ready until assigned again",
}, async () => {
  const { transport, crash } = crashableTransport();
  const service = await startService({
    pipeline: { module: "unused", export: "unused" },
    build: () => createEchoPipeline(),
    transport,
    workers: 1,
    serviceName: "echo",
    env: {},
  });
  try {
    assert.equal(service.readiness.check().ready, true);
    crash(true);
    assert.deepEqual(service.readiness.check().reasons, [
      'member "shout#0" of stage "shout" is assigning: KafkaJSNonRetriableError: boom',
    ]);
    assert.equal(service.failed.aborted, false);
  } finally {
    await service.stop();
    await transport.close();
  }
});

Deno.test({
  name:
    "startService(): a consumer stopped for good (restart=false) is not ready and fails the service",
}, async () => {
  const { transport, crash } = crashableTransport();
  const service = await startService({
    pipeline: { module: "unused", export: "unused" },
    build: () => createEchoPipeline(),
    transport,
    workers: 1,
    serviceName: "echo",
    env: {},
  });
  try {
    crash(false);
    const report = service.readiness.check();
    assert.equal(report.ready, false);
    assert.equal(report.members[0].state, "stopped");
    assert.equal(service.failed.aborted, true);
    assert.match(
      String(service.failed.reason?.message),
      /^Cannot keep stage "shout" running: KafkaJSNonRetriableError: boom$/,
    );
  } finally {
    await service.stop();
    await transport.close();
  }
});

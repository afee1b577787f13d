/**
 * Runs the orders pipeline on the embedded transport in virtual time, for the stage tests.
 *
 * @module
 */
import { createPublisher } from "../../pipeline/publisher.ts";
import { seededRandom } from "../../pipeline/random.ts";
import type { RetryPolicy } from "../../pipeline/retry.ts";
import { startPipeline, waitUntilDrained } from "../../pipeline/run.ts";
import type { RunningPipeline } from "../../pipeline/run.ts";
import type { StageOutcome } from "../../pipeline/runner.ts";
import { FakeClock } from "../../pipeline/testing/fake_clock.ts";
import { createEmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type { EmbeddedTransport } from "../../pipeline/transport/embedded/mod.ts";
import type { OrderPlaced } from "../../stages/events.ts";
import { createOrdersPipeline, PUBLISH_ORDER } from "../../stages/orders_pipeline.ts";
import type { Pipeline } from "../../pipeline/definition.ts";
import { createPaymentGateway } from "../../stages/payment_gateway.ts";
import type { PaymentGateway } from "../../stages/payment_gateway.ts";

/** A running orders pipeline and what it reported. */
export interface OrdersRun {
  readonly transport: EmbeddedTransport;
  readonly pipeline: Pipeline;
  readonly running: RunningPipeline;
  readonly gateway: PaymentGateway;
  readonly clock: FakeClock;
  readonly outcomes: StageOutcome[];
  publish(orders: readonly OrderPlaced[]): Promise<void>;
  drain(): Promise<void>;
}

/** Options for {@linkcode withOrders}. */
export interface OrdersRunOptions {
  readonly seed?: number;
  readonly failureRate?: number;
  readonly concurrency?: number;
  readonly retry?: RetryPolicy;
  readonly declineAbove?: number;
  /** The gateway to charge instead of the in-process simulation (e.g. the HTTP client). */
  readonly gateway?: PaymentGateway;
}

/** Starts the orders pipeline in virtual time, runs `body`, and stops everything. */
export async function withOrders(
  options: OrdersRunOptions,
  body: (run: OrdersRun) => Promise<void>,
): Promise<void> {
  const transport = createEmbeddedTransport({ retryBackoffMs: 1 });
  const clock = new FakeClock({ start: Date.UTC(2025, 0, 1), autoAdvance: true });
  const gateway = options.gateway ?? createPaymentGateway({
    failureRate: options.failureRate ?? 0,
    seed: options.seed ?? 1,
    declineAbove: options.declineAbove,
    clock,
  });
  const pipeline = createOrdersPipeline({
    gateway,
    concurrency: options.concurrency ?? 1,
    retry: options.retry,
  });
  const outcomes: StageOutcome[] = [];
  const running = await startPipeline(pipeline, {
    transport,
    clock,
    random: seededRandom(options.seed ?? 1),
    onOutcome: (outcome) => outcomes.push(outcome),
  });
  const publisher = createPublisher<OrderPlaced>(pipeline, PUBLISH_ORDER, {
    producer: running.producer,
  });
  try {
    await body({
      transport,
      pipeline,
      running,
      gateway,
      clock,
      outcomes,
      async publish(orders) {
        await publisher.publish(orders);
      },
      drain: () => waitUntilDrained(pipeline, transport, { timeoutMs: 10_000, pollMs: 2 }),
    });
  } finally {
    await running.stop();
    await transport.close();
  }
}

/**
 * The Order Service's loop, shared by `deno task orders` and the all-in-one `deno task pipeline`:
 * generate orders at a rate, publish them with the service's idempotent producer (retrying
 * while the broker refuses them), and count them, until a limit, a duration or a stop signal.
 *
 * @module
 */
import type { Clock } from "../pipeline/clock.ts";
import { systemClock } from "../pipeline/clock.ts";
import { errorMessage, errorType } from "../pipeline/errors.ts";
import { createPublisher } from "../pipeline/publisher.ts";
import type { RunningService } from "../pipeline/service.ts";
import type { CommandIo } from "../pipeline/command.ts";
import type { OrderPlaced } from "./events.ts";
import { createOrderGenerator } from "./generate_order.ts";
import { PUBLISH_ORDER } from "./orders_pipeline.ts";
import type { SummaryCounter } from "./summary.ts";
import { ORDER_METRIC } from "./telemetry.ts";

/** Options for {@linkcode publishOrders}. */
export interface PublishOrdersOptions {
  /** Stop after this many orders. */
  readonly maxOrders?: number;
  /** Orders per second; 0 is as fast as possible. */
  readonly rate: number;
  /** Stop after this many seconds. */
  readonly duration?: number;
  /** The generator's seed. */
  readonly seed: number;
  /** Where generated and published orders are counted. */
  readonly counter: SummaryCounter;
  /** Where failed publishes are reported. */
  readonly io: CommandIo;
  /** Stops generating; a publish being retried gives up. */
  readonly signal: AbortSignal;
  /**
   * Time of the orders' `created_at`.
   * @default systemClock
   */
  readonly clock?: Clock;
  /**
   * Pause generating while the consuming groups are this many records behind (only when the
   * service consumes and knows its lag).
   * @default 20000
   */
  readonly maxBacklog?: number;
}

/** A fresh seed per run: order ids derive from it, and a repeat run would find them all paid. */
export function freshSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] >>> 1;
}

/**
 * Generates and publishes orders until `maxOrders`, `duration` or `signal`; resolves then.
 */
export async function publishOrders(
  service: RunningService,
  options: PublishOrdersOptions,
): Promise<void> {
  const { counter, io, signal, rate, seed, clock = systemClock, maxBacklog = 20_000 } = options;
  const metrics = service.telemetry.metrics;
  const published = metrics.counter(ORDER_METRIC.ORDERS_PUBLISHED);
  const failed = metrics.counter(ORDER_METRIC.ORDERS_FAILED);
  const latency = metrics.histogram(ORDER_METRIC.ORDER_PUBLISH_LATENCY);
  // As the reference's counter did, orders_failed_total exists at 0 from the start.
  failed.add(0);
  const publisher = createPublisher<OrderPlaced>(service.pipeline, PUBLISH_ORDER, {
    producer: service.producer,
    instrumentation: service.instrumentation,
  });
  const next = createOrderGenerator({ seed, now: () => clock.now() });
  const started = performance.now();
  const limit = options.maxOrders ?? Number.POSITIVE_INFINITY;
  const until = options.duration === undefined
    ? Number.POSITIVE_INFINITY
    : started + options.duration * 1000;
  const { summary } = counter;
  while (summary.generated < limit && !signal.aborted && performance.now() < until) {
    const elapsed = (performance.now() - started) / 1000;
    const due = rate === 0 ? Number.POSITIVE_INFINITY : Math.floor(elapsed * rate) + 1;
    const batch = Math.min(500, limit - summary.generated, due - summary.generated);
    // Generating far ahead of payment only grows memory and lag.
    const behind = (service.lag() ?? 0) > maxBacklog;
    if (batch <= 0 || behind) {
      // Only an abort ends this sleep early; the loop checks the signal next.
      const wait = behind ? 100 : Math.min(50, 1000 / rate);
      await systemClock.sleep(wait, signal).catch(() => undefined);
      continue;
    }
    const orders = Array.from({ length: batch }, next);
    summary.generated += orders.length;
    if (await publish(orders)) summary.published += orders.length;
  }

  /**
   * Publishes a batch, retrying with backoff while the transport refuses it: a broker that is
   * down delays orders, it does not lose them. Gives up only when stopped.
   */
  async function publish(orders: OrderPlaced[]): Promise<boolean> {
    for (let attempt = 1;; attempt++) {
      const began = performance.now();
      try {
        await publisher.publish(orders);
        const ms = performance.now() - began;
        for (let i = 0; i < orders.length; i++) latency.record(ms);
        published.add(orders.length);
        return true;
      } catch (error) {
        failed.add(orders.length, { error_type: errorType(error) });
        const wait = Math.min(5000, 250 * 2 ** (attempt - 1));
        io.stderr(
          `publish of ${orders.length} orders failed (attempt ${attempt}), retrying in ${wait} ms: ${
            errorMessage(error)
          }`,
        );
        if (signal.aborted) return false;
        // Only an abort ends this sleep early; the loop checks the signal next.
        await systemClock.sleep(wait, signal).catch(() => undefined);
        if (signal.aborted) return false;
      }
    }
  }
}

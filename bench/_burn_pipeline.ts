/**
 * The orders pipeline with a payment gateway that burns a fixed CPU time per charge: the
 * workload of the scaling bench (`deno task bench --scaling`). Supervisor workers import this
 * module and call {@linkcode createBurnPipeline} with clone-able options, as `deno task
 * pipeline` workers import `stages/worker_pipeline.ts`.
 *
 * @module
 */
import type { Pipeline } from "../pipeline/definition.ts";
import { createOrdersPipeline } from "../stages/orders_pipeline.ts";
import type { OrdersPipelineOptions } from "../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../stages/payment_gateway.ts";
import type { PaymentGateway } from "../stages/payment_gateway.ts";

/** Options for {@linkcode createBurnPipeline}: clone-able, so they can be posted to workers. */
export interface BurnPipelineOptions extends Omit<OrdersPipelineOptions, "gateway"> {
  /**
   * CPU time each charge spends in a busy loop, in microseconds.
   * @default 200
   */
  readonly burnUs?: number;
}

/** Spins for `us` microseconds of wall time on the calling thread (nothing else runs). */
export function burn(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) {
    // Busy: the point is to hold the thread.
  }
}

/** A zero-latency, never-failing gateway whose every charge first burns `burnUs` of CPU. */
export function createBurningGateway(burnUs: number): PaymentGateway {
  const inner = createPaymentGateway({ failureRate: 0, latencyMs: 0 });
  return {
    charge(request, signal) {
      burn(burnUs);
      return inner.charge(request, signal);
    },
    get charges() {
      return inner.charges;
    },
    get replays() {
      return inner.replays;
    },
  };
}

/** Builds the orders pipeline over a gateway that burns `burnUs` per charge. */
export function createBurnPipeline(options: BurnPipelineOptions = {}): Pipeline {
  const { burnUs = 200, ...pipelineOptions } = options;
  return createOrdersPipeline({ ...pipelineOptions, gateway: createBurningGateway(burnUs) });
}

/** The input topic of one scaling run. */
export function scalingInput(suffix: string): string {
  return `bench-scaling-in-${suffix}`;
}

/** The burn pipeline's options for one scaling run: its own topics and group. */
export function scalingPipelineOptions(
  args: { readonly suffix: string; readonly partitions: number; readonly burnUs: number },
): BurnPipelineOptions {
  return {
    ordersTopic: scalingInput(args.suffix),
    paymentsTopic: `bench-scaling-out-${args.suffix}`,
    dlqTopic: `bench-scaling-dlq-${args.suffix}`,
    groupId: `bench-scaling-${args.suffix}`,
    partitions: args.partitions,
    burnUs: args.burnUs,
  };
}

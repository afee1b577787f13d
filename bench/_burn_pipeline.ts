/**
 * The orders pipeline with a payment gateway that burns CPU per charge: the workload of the
 * bench's worker-scaling checks (issue 10: with such a handler, 2 workers should process 1.5x
 * the records/s of 1). Two ways to burn: `burnUs` spins for a wall-clock time (the
 * `--scaling` mode), `burnRounds` runs a fixed number of integer-mixing rounds, which costs the
 * same CPU whatever else the machine runs (the client variants' `--burn-rounds`). Supervisor
 * workers import this module by URL and call {@linkcode createBurnPipeline} with clone-able
 * options, as `deno task pipeline` workers import `stages/worker_pipeline.ts`.
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
   * Wall-clock time each charge spins for first, in microseconds.
   * @default 0
   */
  readonly burnUs?: number;
  /**
   * Mixing rounds each charge burns first (about 6 µs per 1 000 rounds on the bench's box).
   * @default 0
   */
  readonly burnRounds?: number;
}

/** Spins for `us` microseconds of wall time on the calling thread (nothing else runs). */
export function spin(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) {
    // Busy: the point is to hold the thread.
  }
}

/** Burns `rounds` rounds of 32-bit mixing; returns the result so it cannot be optimised out. */
export function burn(rounds: number): number {
  let h = 0x9747b28c;
  for (let i = 0; i < rounds; i++) {
    h = Math.imul(h ^ (h >>> 15), 0x5bd1e995) + i;
  }
  return h;
}

/** A zero-latency, never-failing gateway whose every charge first spins and burns. */
export function createBurningGateway(burnUs: number, burnRounds = 0): PaymentGateway {
  const inner = createPaymentGateway({ failureRate: 0, latencyMs: 0 });
  let sink = 0;
  return {
    charge(request, signal) {
      if (burnUs > 0) spin(burnUs);
      if (burnRounds > 0) sink ^= burn(burnRounds);
      return inner.charge(request, signal);
    },
    get charges() {
      return inner.charges + (sink & 0);
    },
    get replays() {
      return inner.replays;
    },
  };
}

/** Builds the orders pipeline over a gateway that burns CPU per charge. */
export function createBurnPipeline(options: BurnPipelineOptions = {}): Pipeline {
  const { burnUs = 0, burnRounds = 0, ...pipelineOptions } = options;
  return createOrdersPipeline({
    ...pipelineOptions,
    gateway: createBurningGateway(burnUs, burnRounds),
  });
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

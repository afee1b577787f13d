/**
 * The orders pipeline with a gateway that burns a fixed amount of CPU per charge, for the
 * bench's worker-scaling check (issue 10: with such a handler, 2 workers should process 1.5x
 * the records/s of 1). The work is a fixed number of integer-mixing rounds, not a wall-clock
 * wait, so it costs the same CPU whatever else the machine runs. Workers import this module by
 * URL, so its options are clone-able.
 *
 * @module
 */
import type { Pipeline } from "../pipeline/definition.ts";
import { createOrdersPipeline } from "../stages/orders_pipeline.ts";
import type { OrdersPipelineOptions } from "../stages/orders_pipeline.ts";
import { createPaymentGateway } from "../stages/payment_gateway.ts";
import type { PaymentGateway } from "../stages/payment_gateway.ts";

/** Options for {@linkcode createBurnPipeline}. */
export interface BurnPipelineOptions extends Omit<OrdersPipelineOptions, "gateway"> {
  /**
   * Mixing rounds burnt per charge (about 6 µs per 1 000 rounds on this bench's box).
   * @default 0
   */
  readonly burnRounds?: number;
}

/** Burns `rounds` rounds of 32-bit mixing; returns the result so it cannot be optimised out. */
export function burn(rounds: number): number {
  let h = 0x9747b28c;
  for (let i = 0; i < rounds; i++) {
    h = Math.imul(h ^ (h >>> 15), 0x5bd1e995) + i;
  }
  return h;
}

/** A zero-latency, never-failing gateway that burns `rounds` before each charge. */
function burningGateway(rounds: number): PaymentGateway {
  const inner = createPaymentGateway({ failureRate: 0, latencyMs: 0 });
  let sink = 0;
  return {
    charge(request, signal) {
      sink ^= burn(rounds);
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
  const { burnRounds = 0, ...pipelineOptions } = options;
  return createOrdersPipeline({ ...pipelineOptions, gateway: burningGateway(burnRounds) });
}

/**
 * The payment gateway's client interface, its errors, and an in-process simulation of it:
 * latency, a failure rate (503s, retryable), and idempotency by key the way real gateways take
 * an `Idempotency-Key`, so a charge repeated after a crash is never a second charge.
 *
 * The pipeline charges the HTTP gateway service (`gateway_service.ts`) through the HTTP client
 * (`gateway_client.ts`); this in-process implementation of the same interface serves stage
 * tests that need no permissions.
 *
 * Whether an attempt fails is a pure function of the seed, the order id and the attempt
 * number, not of the order in which workers happen to call: a run is reproducible under any
 * concurrency.
 *
 * @module
 */
import type { Clock } from "../pipeline/clock.ts";
import { systemClock } from "../pipeline/clock.ts";
import { FatalError, RejectedError, RetryableError } from "../pipeline/errors.ts";
import type { PipelineErrorOptions } from "../pipeline/errors.ts";
import { murmur2 } from "../pipeline/transport/murmur2.ts";
import { ExpiringKeys } from "./_expiring_keys.ts";

/** Options of the gateway errors: the record context, and the HTTP status when one came. */
export interface GatewayErrorOptions extends PipelineErrorOptions {
  /** The HTTP status the gateway answered, when it answered. */
  readonly status?: number;
}

/** The gateway was unavailable (HTTP 503 or another 5xx, 429): worth retrying. */
export class GatewayUnavailableError extends RetryableError {
  /** The HTTP status, when the answer came over HTTP. */
  readonly status?: number;
  /** Creates the error with its message, context and status. */
  constructor(message: string, options: GatewayErrorOptions = {}) {
    super(message, options);
    this.status = options.status;
  }
}

/** The gateway did not answer within the attempt's timeout: worth retrying with the same key. */
export class GatewayTimeoutError extends RetryableError {}

/** The gateway could not be reached (connection refused or reset): worth retrying. */
export class GatewayUnreachableError extends RetryableError {}

/** The gateway declined the charge for good (HTTP 402). */
export class PaymentDeclinedError extends RejectedError {
  /** The HTTP status, when the answer came over HTTP. */
  readonly status?: number;
  /** Creates the error with its message, context and status. */
  constructor(message: string, options: GatewayErrorOptions = {}) {
    super(message, options);
    this.status = options.status;
  }
}

/**
 * The gateway refused the request itself (a 4xx other than 402: malformed, or an idempotency
 * key reused with other parameters): no retry can fix it.
 */
export class GatewayRequestError extends FatalError {
  /** The HTTP status. */
  readonly status?: number;
  /** Creates the error with its message, context and status. */
  constructor(message: string, options: GatewayErrorOptions = {}) {
    super(message, options);
    this.status = options.status;
  }
}

/** Options for {@linkcode createPaymentGateway}. */
export interface PaymentGatewayOptions {
  /**
   * The probability that one attempt fails with a 503, in [0, 1].
   * @default 0.2
   */
  readonly failureRate?: number;
  /**
   * The time one charge takes, in milliseconds.
   * @default 0
   */
  readonly latencyMs?: number;
  /**
   * Charges above this amount are declined for good.
   * @default Infinity
   */
  readonly declineAbove?: number;
  /**
   * The seed of the failure draw.
   * @default 1
   */
  readonly seed?: number;
  /**
   * The clock the latency is spent on and keys expire by.
   * @default systemClock
   */
  readonly clock?: Clock;
  /**
   * How long an idempotency key is kept after its charge, in milliseconds (real gateways keep
   * them 24 hours, as `deno task gateway` does); expired keys leave memory, so a long run does
   * not grow the process that hosts this gateway.
   * @default 24 hours
   */
  readonly keyTtlMs?: number;
}

/** The default of {@linkcode PaymentGatewayOptions.keyTtlMs}: 24 hours. */
export const GATEWAY_KEY_TTL_MS = 24 * 3600 * 1000;

/** A charge request. */
export interface ChargeRequest {
  /** The idempotency key: one charge per key, however often it is asked. */
  readonly idempotencyKey: string;
  /** The amount. */
  readonly amount: number;
  /** The currency. */
  readonly currency: string;
  /** The attempt number, for the failure draw. */
  readonly attempt: number;
}

/** A successful charge. */
export interface Charge {
  /** The gateway's id for the charge. */
  readonly paymentId: string;
  /** Whether this request found an earlier charge under the same key. */
  readonly replayed: boolean;
}

/** The simulated gateway. */
export interface PaymentGateway {
  /** Charges once per idempotency key. */
  charge(request: ChargeRequest, signal?: AbortSignal): Promise<Charge>;
  /** Distinct charges made (expired keys included). */
  readonly charges: number;
  /** Requests answered with an earlier charge (a redelivered order). */
  readonly replays: number;
}

const encoder = new TextEncoder();
/** Where text is encoded to be hashed: no buffer per hash. */
const scratch = new Uint8Array(512);

/** murmur2 of the UTF-8 bytes of `text`. */
function hashText(text: string): number {
  // A UTF-16 code unit takes at most 3 bytes in UTF-8.
  if (text.length * 3 > scratch.length) return murmur2(encoder.encode(text));
  const { written } = encoder.encodeInto(text, scratch);
  return murmur2(scratch.subarray(0, written));
}

/**
 * A uniform draw in [0, 1) fixed by seed, key and attempt: the gateways' failures, reproducible
 * under any concurrency.
 */
export function failureDraw(seed: number, key: string, attempt: number): number {
  return (hashText(`${seed}:${key}:${attempt}`) >>> 0) / 4294967296;
}

/**
 * Creates a simulated gateway.
 *
 * @example
 * ```ts
 * import { createPaymentGateway } from "./payment_gateway.ts";
 * const gateway = createPaymentGateway({ failureRate: 0 });
 * const charge = await gateway.charge({ idempotencyKey: "o-1", amount: 5, currency: "USD", attempt: 1 });
 * console.log(charge.replayed); // false
 * ```
 */
export function createPaymentGateway(options: PaymentGatewayOptions = {}): PaymentGateway {
  const {
    failureRate = 0.2,
    latencyMs = 0,
    declineAbove = Number.POSITIVE_INFINITY,
    seed = 1,
    clock = systemClock,
    keyTtlMs = GATEWAY_KEY_TTL_MS,
  } = options;
  if (!Number.isSafeInteger(keyTtlMs) || keyTtlMs < 1) {
    throw new RangeError(
      `Cannot create gateway as 'keyTtlMs' must be a positive integer: current value is ${keyTtlMs}`,
    );
  }
  if (!(failureRate >= 0 && failureRate <= 1)) {
    throw new RangeError(
      `Cannot create gateway as 'failureRate' must be in [0, 1]: current value is ${failureRate}`,
    );
  }
  // The payment id of each charged key, until keyTtlMs after its charge.
  const charged = new ExpiringKeys<string, string>(keyTtlMs);
  let charges = 0;
  let replays = 0;
  return {
    async charge(request: ChargeRequest, signal?: AbortSignal): Promise<Charge> {
      if (latencyMs > 0) await clock.sleep(latencyMs, signal);
      const now = clock.now();
      const earlier = charged.get(request.idempotencyKey, now);
      if (earlier !== undefined) {
        replays++;
        return { paymentId: earlier, replayed: true };
      }
      // No draw at a failure rate of 0: a draw is never below it.
      if (
        failureRate > 0 &&
        failureDraw(seed, request.idempotencyKey, request.attempt) < failureRate
      ) {
        throw new GatewayUnavailableError(
          `Payment gateway answered 503 for "${request.idempotencyKey}" on attempt ${request.attempt}`,
        );
      }
      if (request.amount > declineAbove) {
        throw new PaymentDeclinedError(
          `Payment declined for "${request.idempotencyKey}": amount ${request.amount} ${request.currency} is above the limit ${declineAbove}`,
        );
      }
      const paymentId = `pay_${
        (hashText(`${seed}:${request.idempotencyKey}`) >>> 0).toString(16)
      }_${charges++}`;
      charged.set(request.idempotencyKey, paymentId, now);
      return { paymentId, replayed: false };
    },
    get charges(): number {
      return charges;
    },
    get replays(): number {
      return replays;
    },
  };
}

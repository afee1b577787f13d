/**
 * The payment stage's HTTP client of the gateway service: one `fetch` per attempt (Deno keeps
 * the connection alive between them), the order's idempotency key on every attempt, a timeout
 * per attempt, and each failure classified so the runtime decides by class: 503s, timeouts and
 * refused connections are retryable, a 402 is a declined payment, any other 4xx is fatal.
 *
 * @module
 */
import {
  GatewayRequestError,
  GatewayTimeoutError,
  GatewayUnavailableError,
  GatewayUnreachableError,
  PaymentDeclinedError,
} from "./payment_gateway.ts";
import type { Charge, ChargeRequest, PaymentGateway } from "./payment_gateway.ts";
import { GATEWAY_PATH, IDEMPOTENCY_KEY_HEADER } from "./gateway_service.ts";

/** Options for {@linkcode createGatewayClient}. */
export interface GatewayClientOptions {
  /**
   * How long one attempt may take before it is abandoned as a timeout, in milliseconds.
   * @default 2000
   */
  readonly timeoutMs?: number;
  /**
   * The `fetch` to call (a test may count or fault requests).
   * @default globalThis.fetch
   */
  readonly fetch?: typeof fetch;
}

interface ChargeAnswer {
  readonly payment_id?: unknown;
  readonly replayed?: unknown;
  readonly error?: { readonly message?: unknown };
}

async function readAnswer(response: Response): Promise<ChargeAnswer> {
  try {
    return await response.json() as ChargeAnswer;
  } catch (error) {
    // A timeout or reset while reading the body is the caller's to classify.
    if (error instanceof DOMException || error instanceof TypeError) throw error;
    return {};
  }
}

/**
 * Creates the HTTP client of the gateway at `baseUrl`.
 *
 * @example
 * ```ts ignore
 * import { createGatewayClient } from "./gateway_client.ts";
 * const gateway = createGatewayClient("http://127.0.0.1:8085", { timeoutMs: 1000 });
 * const charge = await gateway.charge({ idempotencyKey: "o-1", amount: 5, currency: "USD", attempt: 1 });
 * ```
 */
export function createGatewayClient(
  baseUrl: string,
  options: GatewayClientOptions = {},
): PaymentGateway {
  const { timeoutMs = 2000, fetch: fetchFn = globalThis.fetch } = options;
  if (!(Number.isInteger(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(
      `Cannot create gateway client as 'timeoutMs' must be a positive integer: current value is ${timeoutMs}`,
    );
  }
  const url = new URL(GATEWAY_PATH.CHARGES, baseUrl).href;
  let charges = 0;
  let replays = 0;
  return {
    async charge(request: ChargeRequest, signal?: AbortSignal): Promise<Charge> {
      const key = request.idempotencyKey;
      const what = `"${key}" on attempt ${request.attempt}`;
      const timeout = AbortSignal.timeout(timeoutMs);
      const attemptSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let response: Response;
      let answer: ChargeAnswer;
      try {
        response = await fetchFn(url, {
          method: "POST",
          headers: { "content-type": "application/json", [IDEMPOTENCY_KEY_HEADER]: key },
          body: JSON.stringify({ amount: request.amount, currency: request.currency }),
          signal: attemptSignal,
        });
        answer = await readAnswer(response);
      } catch (error) {
        // The caller's own abort (a drain, a stop) is not the gateway's failure.
        if (signal?.aborted) throw signal.reason;
        if (timeout.aborted) {
          throw new GatewayTimeoutError(
            `Payment gateway did not answer ${what} within ${timeoutMs} ms`,
            { cause: error },
          );
        }
        throw new GatewayUnreachableError(
          `Cannot reach the payment gateway at ${url} for ${what}: ${(error as Error).message}`,
          { cause: error },
        );
      }
      const reason = typeof answer.error?.message === "string" ? `: ${answer.error.message}` : "";
      if (response.status === 402) {
        throw new PaymentDeclinedError(`Payment declined for ${what}${reason}`, {
          status: response.status,
        });
      }
      if (response.status >= 500 || response.status === 429 || response.status === 408) {
        throw new GatewayUnavailableError(
          `Payment gateway answered ${response.status} for ${what}${reason}`,
          { status: response.status },
        );
      }
      if (response.status >= 400) {
        throw new GatewayRequestError(
          `Payment gateway refused ${what} with ${response.status}${reason}`,
          { status: response.status },
        );
      }
      if (typeof answer.payment_id !== "string") {
        // The charge may exist: the next attempt with the same key returns it.
        throw new GatewayUnavailableError(
          `Payment gateway answered ${response.status} for ${what} without a payment id`,
          { status: response.status },
        );
      }
      const replayed = answer.replayed === true;
      if (replayed) replays++;
      else charges++;
      return { paymentId: answer.payment_id, replayed };
    },
    get charges(): number {
      return charges;
    },
    get replays(): number {
      return replays;
    },
  };
}

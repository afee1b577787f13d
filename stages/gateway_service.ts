/**
 * A payment gateway service that behaves like a real one, over HTTP: it keeps idempotency keys
 * for 24 hours across all its callers (a repeated key returns the first charge and never
 * charges again), answers some requests with 503s, holds others past any client's timeout, adds
 * latency, declines large amounts with 402, and keeps a ledger of every charge per key: the
 * independent witness of "charged once".
 *
 * Routes:
 * - `POST /v1/charges` with an `Idempotency-Key` header and `{"amount": 12.5, "currency":
 *   "USD"}`: 201 with the charge, 200 with the first charge again (`Idempotent-Replayed: true`),
 *   402 declined, 400 malformed, 422 key reused with other parameters, 503 unavailable.
 * - `GET /v1/ledger` (every key) and `GET /v1/ledger/<key>` (one key): the charges made.
 * - `GET /livez`: 200 while the service runs.
 *
 * Which request fails is a pure function of the seed, the key and how many requests that key
 * has had, never of how callers interleave: runs are reproducible.
 *
 * @module
 */
import type { Clock } from "../pipeline/clock.ts";
import { systemClock } from "../pipeline/clock.ts";
import { ExpiringKeys } from "./_expiring_keys.ts";
import { failureDraw } from "./payment_gateway.ts";

/** The idempotency window of real gateways (Stripe keeps keys 24 hours). */
export const DAY_MS = 24 * 3600 * 1000;

/** The gateway's routes. */
export const GATEWAY_PATH = {
  CHARGES: "/v1/charges",
  LEDGER: "/v1/ledger",
  LIVEZ: "/livez",
} as const;

/** The header that carries the idempotency key, as Stripe and Adyen name it. */
export const IDEMPOTENCY_KEY_HEADER = "Idempotency-Key";

/** The header set on an answer that repeats an earlier charge. */
export const REPLAYED_HEADER = "Idempotent-Replayed";

/** Options for {@linkcode createGatewayHandler}. */
export interface GatewayHandlerOptions {
  /**
   * The probability that one request is answered 503 (nothing charged), in [0, 1].
   * @default 0.2
   */
  readonly failureRate?: number;
  /**
   * The probability that one request is held past any client's timeout, in [0, 1]. The charge
   * is made first and its answer comes too late: the case idempotency keys exist for.
   * @default 0
   */
  readonly timeoutRate?: number;
  /**
   * How long a held request waits before it answers (too late), in milliseconds.
   * @default 30000
   */
  readonly holdMs?: number;
  /**
   * The time every request takes, in milliseconds.
   * @default 0
   */
  readonly latencyMs?: number;
  /**
   * Amounts above this are declined with 402.
   * @default Infinity
   */
  readonly declineAbove?: number;
  /**
   * How long an idempotency key is kept after its first request, in milliseconds; expired keys
   * leave memory.
   * @default DAY_MS
   */
  readonly keyTtlMs?: number;
  /**
   * How long the ledger keeps a key after its last charge, in milliseconds.
   * @default 7 * DAY_MS
   */
  readonly ledgerRetentionMs?: number;
  /**
   * The seed of the failure and timeout draws.
   * @default 1
   */
  readonly seed?: number;
  /**
   * The clock of latency, holds and expiry.
   * @default systemClock
   */
  readonly clock?: Clock;
}

/** One charge in the ledger. */
export interface LedgerCharge {
  /** The gateway's id of the charge. */
  readonly payment_id: string;
  /** The amount charged. */
  readonly amount: number;
  /** The currency. */
  readonly currency: string;
  /** When it was charged, ISO 8601. */
  readonly charged_at: string;
}

/** What the gateway has answered since it started. */
export interface GatewayCounts {
  /** Charge requests received. */
  readonly requests: number;
  /** Distinct charges made. */
  readonly charges: number;
  /** Requests answered with an earlier charge. */
  readonly replays: number;
  /** Requests answered 503. */
  readonly unavailable: number;
  /** Requests held past the client's timeout. */
  readonly timeouts: number;
  /** Requests declined with 402. */
  readonly declined: number;
  /** Requests refused as malformed (400) or as a key reused with other parameters (422). */
  readonly refused: number;
  /** Idempotency keys held in memory now. */
  readonly keys: number;
}

/** The body of `GET /v1/ledger`. */
export interface Ledger extends GatewayCounts {
  /** The charges made per idempotency key. */
  readonly ledger: Record<string, LedgerCharge[]>;
}

/** The gateway's request handler and its state, for `Deno.serve` and for tests. */
export interface GatewayHandler {
  /** Answers one HTTP request. */
  handle(request: Request): Promise<Response>;
  /** The counts so far. */
  counts(): GatewayCounts;
  /** The charges per key (the ledger endpoint's body). */
  ledger(): Ledger;
  /** Answers every held request now; later requests are still served. */
  releaseHeld(): void;
}

interface KeyState {
  requests: number;
  charge?: { readonly paymentId: string; readonly amount: number; readonly currency: string };
}

interface LedgerEntry {
  readonly charges: LedgerCharge[];
}

interface ChargeBody {
  readonly amount: number;
  readonly currency: string;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function problem(status: number, type: string, message: string): Response {
  return json(status, { error: { type, message } });
}

function checkRate(name: string, value: number): void {
  if (!(value >= 0 && value <= 1)) {
    throw new RangeError(
      `Cannot create gateway as '${name}' must be in [0, 1]: current value is ${value}`,
    );
  }
}

async function readChargeBody(request: Request): Promise<ChargeBody | string> {
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return "the body is not JSON";
  }
  if (typeof body !== "object" || body === null) return "the body must be a JSON object";
  const { amount, currency } = body as Record<string, unknown>;
  if (typeof amount !== "number" || !Number.isFinite(amount) || amount <= 0) {
    return `'amount' must be a positive number: current value is ${JSON.stringify(amount)}`;
  }
  if (typeof currency !== "string" || !/^[A-Z]{3}$/.test(currency)) {
    return `'currency' must be an ISO 4217 code: current value is ${JSON.stringify(currency)}`;
  }
  return { amount, currency };
}

/**
 * Creates the gateway's request handler: the whole service without a socket.
 *
 * @example
 * ```ts
 * import { createGatewayHandler } from "./gateway_service.ts";
 * const gateway = createGatewayHandler({ failureRate: 0 });
 * const charge = () =>
 *   gateway.handle(new Request("http://gateway/v1/charges", {
 *     method: "POST",
 *     headers: { "Idempotency-Key": "o-1" },
 *     body: JSON.stringify({ amount: 5, currency: "USD" }),
 *   }));
 * console.log((await charge()).status, (await charge()).status); // 201 200
 * console.log(gateway.ledger().ledger["o-1"].length); // 1
 * ```
 */
export function createGatewayHandler(options: GatewayHandlerOptions = {}): GatewayHandler {
  const {
    failureRate = 0.2,
    timeoutRate = 0,
    holdMs = 30_000,
    latencyMs = 0,
    declineAbove = Number.POSITIVE_INFINITY,
    keyTtlMs = DAY_MS,
    ledgerRetentionMs = 7 * DAY_MS,
    seed = 1,
    clock = systemClock,
  } = options;
  checkRate("failureRate", failureRate);
  checkRate("timeoutRate", timeoutRate);
  // Every key lives keyTtlMs from its first request.
  const keys = new ExpiringKeys<string, KeyState>(keyTtlMs);
  // Set again on every charge: a key stays ledgerRetentionMs from its last charge.
  const ledger = new ExpiringKeys<string, LedgerEntry>(ledgerRetentionMs);
  let held = new AbortController();
  let chargesMade = 0;
  const counts = {
    requests: 0,
    replays: 0,
    unavailable: 0,
    timeouts: 0,
    declined: 0,
    refused: 0,
  };

  function record(key: string, charge: LedgerCharge, now: number): void {
    const entry = ledger.get(key, now) ?? { charges: [] };
    entry.charges.push(charge);
    ledger.set(key, entry, now);
  }

  async function charge(request: Request): Promise<Response> {
    counts.requests++;
    const key = request.headers.get(IDEMPOTENCY_KEY_HEADER);
    if (key === null || key === "" || key.length > 255) {
      counts.refused++;
      return problem(
        400,
        "invalid_request",
        `Cannot charge as the '${IDEMPOTENCY_KEY_HEADER}' header must hold 1 to 255 characters`,
      );
    }
    const body = await readChargeBody(request);
    if (typeof body === "string") {
      counts.refused++;
      return problem(400, "invalid_request", `Cannot charge "${key}" as ${body}`);
    }
    const now = clock.now();
    let state = keys.get(key, now);
    if (state === undefined) {
      state = { requests: 0 };
      keys.set(key, state, now);
    }
    const attempt = ++state.requests;
    const earlier = state.charge;
    if (earlier && (earlier.amount !== body.amount || earlier.currency !== body.currency)) {
      counts.refused++;
      return problem(
        422,
        "idempotency_key_reused",
        `Cannot charge "${key}" ${body.amount} ${body.currency} as the key was used for ` +
          `${earlier.amount} ${earlier.currency}`,
      );
    }
    // Not request.signal: a gateway finishes what it started when its caller hangs up, as real
    // ones do (and a held request ends by holdMs or by close()).
    const signal = held.signal;
    if (latencyMs > 0) {
      try {
        await clock.sleep(latencyMs, signal);
      } catch {
        // The service closes: nothing was charged.
        return problem(
          503,
          "unavailable",
          `Payment gateway is shutting down: "${key}" not charged`,
        );
      }
    }
    // A key that has its charge is answered from the idempotency store, which sits in front of
    // what may fail (as Stripe's does): the caller that lost the first answer always learns
    // of the charge, instead of giving up on an order it has in fact paid.
    if (state.charge === undefined && failureDraw(seed, key, attempt) < failureRate) {
      counts.unavailable++;
      return problem(
        503,
        "unavailable",
        `Payment gateway unavailable for "${key}" (request ${attempt})`,
      );
    }
    let response: Response;
    // Read again after the await: a concurrent request with this key may have charged.
    const first = state.charge;
    if (first) {
      counts.replays++;
      response = json(200, {
        payment_id: first.paymentId,
        idempotency_key: key,
        amount: first.amount,
        currency: first.currency,
        replayed: true,
      }, { [REPLAYED_HEADER]: "true" });
    } else if (body.amount > declineAbove) {
      counts.declined++;
      return problem(
        402,
        "card_declined",
        `Payment declined for "${key}": amount ${body.amount} ${body.currency} is above the ` +
          `limit ${declineAbove}`,
      );
    } else {
      const paymentId = `pay_${(seed >>> 0).toString(36)}_${(++chargesMade).toString(36)}`;
      state.charge = { paymentId, amount: body.amount, currency: body.currency };
      record(key, {
        payment_id: paymentId,
        amount: body.amount,
        currency: body.currency,
        charged_at: new Date(now).toISOString(),
      }, now);
      response = json(201, {
        payment_id: paymentId,
        idempotency_key: key,
        amount: body.amount,
        currency: body.currency,
        replayed: false,
      });
    }
    if (failureDraw(seed, `timeout:${key}`, attempt) < timeoutRate) {
      counts.timeouts++;
      // The charge stands; its answer comes after the caller stopped waiting.
      await clock.sleep(holdMs, signal).catch(() => undefined);
    }
    return response;
  }

  function ledgerOf(key?: string): Ledger {
    const now = clock.now();
    // The counts below report the keys held: expired ones must not be among them.
    keys.sweep(now);
    const entries: Record<string, LedgerCharge[]> = {};
    for (const [k, entry] of ledger.entries(now)) {
      if (key === undefined || k === key) entries[k] = [...entry.charges];
    }
    return { ...handler.counts(), ledger: entries };
  }

  const handler: GatewayHandler = {
    async handle(request: Request): Promise<Response> {
      const { pathname } = new URL(request.url);
      if (pathname === GATEWAY_PATH.LIVEZ) return new Response("ok\n");
      if (pathname === GATEWAY_PATH.CHARGES) {
        if (request.method !== "POST") {
          return problem(405, "method_not_allowed", `Use POST on ${GATEWAY_PATH.CHARGES}`);
        }
        return await charge(request);
      }
      if (pathname === GATEWAY_PATH.LEDGER) return json(200, ledgerOf());
      if (pathname.startsWith(`${GATEWAY_PATH.LEDGER}/`)) {
        return json(
          200,
          ledgerOf(decodeURIComponent(pathname.slice(GATEWAY_PATH.LEDGER.length + 1))),
        );
      }
      return problem(404, "not_found", `No route ${request.method} ${pathname}`);
    },
    counts(): GatewayCounts {
      return { ...counts, charges: chargesMade, keys: keys.size };
    },
    ledger: () => ledgerOf(),
    releaseHeld(): void {
      held.abort();
      held = new AbortController();
    },
  };
  return handler;
}

/** Options for {@linkcode startGatewayService}. */
export interface GatewayServiceOptions extends GatewayHandlerOptions {
  /**
   * The port; 0 picks a free one.
   * @default 0
   */
  readonly port?: number;
  /**
   * The address to bind.
   * @default "127.0.0.1"
   */
  readonly hostname?: string;
}

/** A running gateway service. */
export interface GatewayService {
  /** Its base URL, e.g. `http://127.0.0.1:8085`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** Its handler, to read counts and the ledger without HTTP. */
  readonly handler: GatewayHandler;
  /** Answers held requests, stops listening and waits for requests in flight. */
  close(): Promise<void>;
}

/**
 * Starts the gateway service on `hostname:port` (loopback and a free port by default).
 *
 * @example
 * ```ts ignore
 * import { startGatewayService } from "./gateway_service.ts";
 * const gateway = await startGatewayService({ failureRate: 0.2 });
 * console.log(gateway.url); // http://127.0.0.1:<port>
 * await gateway.close();
 * ```
 */
export function startGatewayService(options: GatewayServiceOptions = {}): Promise<GatewayService> {
  const { port = 0, hostname = "127.0.0.1", ...handlerOptions } = options;
  const handler = createGatewayHandler(handlerOptions);
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        port,
        hostname,
        onListen: (address) => {
          const url = `http://${
            address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname
          }:${address.port}`;
          resolve({
            url,
            port: address.port,
            handler,
            async close(): Promise<void> {
              handler.releaseHeld();
              await server.shutdown();
            },
          });
        },
      }, (request) => handler.handle(request));
    } catch (error) {
      reject(error);
    }
  });
}

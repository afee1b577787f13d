/**
 * The HTTP endpoints an orchestrator and a scraper use, on `HEALTH_PORT`:
 *
 * - `GET /livez`: 200 while the process runs (its event loop answers);
 * - `GET /readyz`: 200 when {@linkcode Readiness.check} says ready, else 503; the body is the
 *   report as JSON (members, broker, reasons);
 * - `GET /metrics`: the metrics in the Prometheus text format.
 *
 * It binds 127.0.0.1 unless told otherwise (`HEALTH_HOST=0.0.0.0` in a container).
 *
 * @example
 * ```ts ignore
 * const server = serveHealth(readiness, { port: 8080, metrics: () => renderNow() });
 * // ... on shutdown:
 * await server.close();
 * ```
 *
 * @module
 */
import { ConfigError, errorMessage } from "./errors.ts";
import type { Readiness } from "./health.ts";
import { PROMETHEUS_CONTENT_TYPE } from "./telemetry/prometheus.ts";

/** The paths served. */
export const HEALTH_PATH = { LIVE: "/livez", READY: "/readyz", METRICS: "/metrics" } as const;

/** Options for {@linkcode serveHealth}. */
export interface HealthServerOptions {
  /** The port; 0 picks a free one (see `HealthServer.port`). */
  readonly port: number;
  /**
   * The address to bind.
   * @default "127.0.0.1"
   */
  readonly host?: string;
  /**
   * Renders `/metrics`; without it `/metrics` answers 404.
   * @default none
   */
  readonly metrics?: () => Promise<string>;
}

/** A running health server. */
export interface HealthServer {
  /** The port it listens on. */
  readonly port: number;
  /** The base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** Stops listening. */
  close(): Promise<void>;
}

/**
 * Serves `/livez`, `/readyz` and `/metrics` for `readiness`.
 *
 * @throws {ConfigError} when the port is out of range or cannot be bound
 */
export function serveHealth(readiness: Readiness, options: HealthServerOptions): HealthServer {
  const { port, host = "127.0.0.1", metrics } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(
      `Cannot serve health endpoints as the port must be an integer from 0 to 65535: current ` +
        `value is ${port}`,
      { field: "HEALTH_PORT" },
    );
  }
  async function handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    if (path === HEALTH_PATH.LIVE) return new Response("ok\n");
    if (path === HEALTH_PATH.READY) {
      const report = readiness.check();
      return Response.json(report, { status: report.ready ? 200 : 503 });
    }
    if (path === HEALTH_PATH.METRICS && metrics !== undefined) {
      try {
        return new Response(await metrics(), {
          headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
        });
      } catch (error) {
        return new Response(`cannot collect metrics: ${errorMessage(error)}\n`, { status: 500 });
      }
    }
    return new Response("not found\n", { status: 404 });
  }
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ port, hostname: host, onListen: () => {} }, handle);
  } catch (error) {
    throw new ConfigError(
      `Cannot serve health endpoints on ${host}:${port}: ${errorMessage(error)}`,
      {
        field: "HEALTH_PORT",
        cause: error,
      },
    );
  }
  const bound = server.addr.port;
  return {
    port: bound,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}`,
    async close(): Promise<void> {
      await server.shutdown();
    },
  };
}

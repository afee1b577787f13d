/**
 * Settings every service command shares (`deno task pipeline`, `orders`, `payments`, `run`):
 * where the health endpoints listen. Spread into a command's config spec.
 *
 * @example
 * ```ts
 * import { HEALTH_CONFIG, healthEndpoint } from "./service_config.ts";
 * import { parseConfig } from "./config.ts";
 * const { values } = parseConfig(HEALTH_CONFIG, { args: [], env: { HEALTH_PORT: "8080" } });
 * console.log(healthEndpoint(values)); // { port: 8080, host: "127.0.0.1" }
 * ```
 *
 * @module
 */
import { setting } from "./config.ts";
import type { HealthEndpointOptions } from "./service.ts";

/** The health endpoint settings. */
export const HEALTH_CONFIG = {
  healthPort: setting({
    type: "integer",
    env: "HEALTH_PORT",
    flag: "health-port",
    min: 0,
    max: 65535,
    description:
      "Serve /livez, /readyz and /metrics (Prometheus text) on this port; unset serves none",
  }),
  healthHost: setting({
    type: "string",
    env: "HEALTH_HOST",
    flag: "health-host",
    default: "127.0.0.1",
    description: "Address the health endpoints bind; 0.0.0.0 in a container",
  }),
} as const;

/** The health endpoint of parsed settings, or `undefined` when `HEALTH_PORT` is unset. */
export function healthEndpoint(
  values: { healthPort?: number; healthHost: string },
): HealthEndpointOptions | undefined {
  if (values.healthPort === undefined) return undefined;
  return { port: values.healthPort, host: values.healthHost };
}

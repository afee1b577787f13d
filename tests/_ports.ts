/**
 * Loopback ports for the servers tests start (brokers, Collectors, Prometheus).
 *
 * @module
 */

/** `count` distinct free TCP ports on 127.0.0.1, all held until every one is chosen. */
export function freeLoopbackPorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((listener) => (listener.addr as Deno.NetAddr).port);
  for (const listener of listeners) listener.close();
  return ports;
}

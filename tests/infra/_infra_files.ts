/**
 * Paths of the stack's configuration files and a YAML reader, for the config tests.
 *
 * @module
 */

import { parse } from "yaml";

const ROOT = new URL("../../", import.meta.url);

/** An absolute path inside the repository. */
export function repoPath(relative: string): string {
  return new URL(relative, ROOT).pathname;
}

/** The stack's files, as absolute paths. */
export const INFRA = {
  compose: repoPath("infra/compose.yaml"),
  dockerfile: repoPath("Dockerfile"),
  k8s: repoPath("infra/k8s"),
  collector: repoPath("infra/otel-collector/config.yaml"),
  collectorManifest: repoPath("infra/otel-collector/builder-config.yaml"),
  tempo: repoPath("infra/tempo/tempo.yaml"),
  prometheus: repoPath("infra/prometheus/prometheus.yml"),
  grafanaDatasources: repoPath("infra/grafana/provisioning/datasources/datasources.yaml"),
  grafanaDashboards: repoPath("infra/grafana/provisioning/dashboards/dashboards.yaml"),
  console: repoPath("infra/redpanda-console/config.yaml"),
  generatedDashboards: repoPath("dashboards/generated"),
} as const;

/**
 * A parsed YAML document, typed loosely on purpose: the tests check its shape key by key.
 */
// deno-lint-ignore no-explicit-any -- configuration documents are checked structurally.
export type Doc = any;

/** Reads and parses a YAML file. */
export async function readYaml(path: string): Promise<Doc> {
  return parse(await Deno.readTextFile(path));
}

/** The port of a `host:port` (or `:port`) address, as a number. */
export function portOf(address: string): number {
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  if (!Number.isInteger(port)) throw new Error(`No port in address "${address}"`);
  return port;
}

/** A published port of a Compose service: `[address:]host:container`. */
export interface PublishedPort {
  /** The host address it binds to; `undefined` when the entry names none (every interface). */
  address?: string;
  /** The host port. */
  host: number;
  /** The container port. */
  container: number;
}

/** Compose `ports` entries (short syntax, "[address:]host:container") of a service. */
export function publishedPorts(service: Doc): PublishedPort[] {
  return (service.ports ?? []).map((entry: string) => {
    const parts = String(entry).split(":");
    const [host, container] = parts.slice(-2).map(Number);
    const address = parts.length > 2 ? parts.slice(0, -2).join(":") : undefined;
    return { address, host, container };
  });
}

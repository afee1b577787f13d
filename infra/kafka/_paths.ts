/**
 * Default locations of the local broker, relative to the repository root.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { join, resolve } from "node:path";

/** The repository root (two folders above this file). */
export const REPO_ROOT: string = resolve(fileURLToPath(new URL("../..", import.meta.url)));

/** The Maven project that lists the broker's jars. */
export const POM_FILE: string = join(REPO_ROOT, "infra", "kafka", "pom.xml");

/** The log4j2 configuration the broker runs with. */
export const LOG4J_CONFIG_FILE: string = join(REPO_ROOT, "infra", "kafka", "log4j2.xml");

/** Where the broker's jars are gathered (git-ignored). */
export function defaultLibsDir(rootDir: string): string {
  return join(rootDir, ".local", "kafka", "libs");
}

/** Where the broker keeps its data, metadata log and `broker.log` (git-ignored). */
export function defaultDataDir(rootDir: string): string {
  return join(rootDir, ".local", "kafka", "data");
}

/** A path shown relative to `rootDir` when it lies inside it. */
export function displayPath(path: string, rootDir: string): string {
  const absolute = resolve(path);
  const prefix = rootDir.endsWith("/") ? rootDir : `${rootDir}/`;
  return absolute.startsWith(prefix) ? absolute.slice(prefix.length) : absolute;
}

/**
 * Gathers the local broker's jars with Maven (`infra/kafka/pom.xml`) into `.local/kafka/libs`,
 * once: later calls find them there and return at once.
 *
 * @module
 */

import { delimiter, join } from "node:path";
import { BrokerInstallError, MissingToolError } from "./errors.ts";
import { defaultLibsDir, displayPath, POM_FILE, REPO_ROOT } from "./_paths.ts";

/** Name of the marker file holding the pom the jars were gathered from. */
const MARKER_FILE = ".installed-pom.xml";

/** How to get each program the broker needs, shown when it is missing. */
const TOOL_HINTS: Record<string, string> = {
  java: "install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)",
  mvn: "install Apache Maven (Debian: apt-get install maven)",
};

/** Options of {@linkcode installBroker}. */
export interface InstallBrokerOptions {
  /**
   * The repository root; the jars go under it.
   * @default the repository holding this file
   */
  readonly rootDir?: string;
  /**
   * Where the jars are gathered.
   * @default "<rootDir>/.local/kafka/libs"
   */
  readonly libsDir?: string;
  /**
   * The directories searched for `java` and `mvn`, joined like the `PATH` variable.
   * @default the `PATH` environment variable
   */
  readonly searchPath?: string;
  /**
   * Receives progress lines (e.g. "Installing Kafka 4.4.0 ...").
   * @default drops them
   */
  readonly log?: (line: string) => void;
}

/** What {@linkcode installBroker} found or gathered. */
export interface InstalledBroker {
  /** The directory holding the broker's jars (the classpath is `<libsDir>/*`). */
  readonly libsDir: string;
  /** The Apache Kafka version the jars hold, as pinned in `infra/kafka/pom.xml`. */
  readonly kafkaVersion: string;
  /** Whether this call ran Maven (false when the jars were already there). */
  readonly installed: boolean;
  /** The `java` executable that runs the broker. */
  readonly java: string;
}

/**
 * Makes sure the broker's jars are in `libsDir`, running Maven only when they are missing or
 * were gathered from a different pom. Throws {@linkcode MissingToolError} when `java` (always
 * needed) or `mvn` (needed to install) is not on the search path, and
 * {@linkcode BrokerInstallError} with Maven's output when Maven fails.
 *
 * @example
 * ```ts ignore
 * import { installBroker } from "./install.ts";
 * const { libsDir, kafkaVersion } = await installBroker({ log: console.error });
 * console.log(`Kafka ${kafkaVersion} jars in ${libsDir}`);
 * ```
 */
export async function installBroker(options: InstallBrokerOptions = {}): Promise<InstalledBroker> {
  const {
    rootDir = REPO_ROOT,
    libsDir = defaultLibsDir(rootDir),
    searchPath = Deno.env.get("PATH") ?? "",
    log = () => {},
  } = options;

  const java = await requireTool("java", searchPath);
  const pom = await Deno.readTextFile(POM_FILE);
  const kafkaVersion = pinnedKafkaVersion(pom);
  if (await isInstalled(libsDir, pom, kafkaVersion)) {
    return { libsDir, kafkaVersion, installed: false, java };
  }

  const mvn = await requireTool("mvn", searchPath);
  log(
    `Installing Kafka ${kafkaVersion} into ${displayPath(libsDir, rootDir)} with Maven ` +
      "(first run only; may take a minute)...",
  );
  // Gather into a private folder and rename it into place, so an interrupted or concurrent
  // install never leaves a half-filled libs folder behind.
  const partialDir = `${libsDir}.partial-${Deno.pid}`;
  await Deno.remove(partialDir, { recursive: true }).catch(ignoreNotFound);
  const started = Date.now();
  const result = await new Deno.Command(mvn, {
    args: [
      "-q",
      "-B",
      "-f",
      POM_FILE,
      "dependency:copy-dependencies",
      `-DoutputDirectory=${partialDir}`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    await Deno.remove(partialDir, { recursive: true }).catch(ignoreNotFound);
    const output = tailLines(
      new TextDecoder().decode(result.stdout) + new TextDecoder().decode(result.stderr),
      30,
    );
    throw new BrokerInstallError(
      `Cannot install Kafka "${kafkaVersion}" as Maven failed with exit code ${result.code}`,
      output,
    );
  }
  await Deno.writeTextFile(join(partialDir, MARKER_FILE), pom);
  await Deno.remove(libsDir, { recursive: true }).catch(ignoreNotFound);
  try {
    await Deno.rename(partialDir, libsDir);
  } catch (error) {
    // Another process finished the same install first: its jars are as good as ours.
    await Deno.remove(partialDir, { recursive: true });
    if (!(await isInstalled(libsDir, pom, kafkaVersion))) throw error;
  }
  log(`Installed Kafka ${kafkaVersion} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { libsDir, kafkaVersion, installed: true, java };
}

/**
 * The Kafka version pinned by a pom's `<kafka.version>` property.
 *
 * @example
 * ```ts
 * import { pinnedKafkaVersion } from "./install.ts";
 * pinnedKafkaVersion("<kafka.version>4.4.0</kafka.version>"); // "4.4.0"
 * ```
 */
export function pinnedKafkaVersion(pom: string): string {
  const match = pom.match(/<kafka\.version>\s*([^<\s]+)\s*<\/kafka\.version>/);
  if (!match) {
    throw new BrokerInstallError(
      `Cannot read the Kafka version from "${POM_FILE}": no <kafka.version> property`,
      "",
    );
  }
  return match[1];
}

/**
 * The full path of an executable found on `searchPath`, or `undefined`.
 *
 * @example
 * ```ts ignore
 * import { findTool } from "./install.ts";
 * console.log(await findTool("java", Deno.env.get("PATH") ?? "")); // "/usr/bin/java"
 * ```
 */
export async function findTool(name: string, searchPath: string): Promise<string | undefined> {
  for (const dir of searchPath.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      const info = await Deno.stat(candidate);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return candidate;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory)) {
        throw error;
      }
    }
  }
  return undefined;
}

async function requireTool(name: string, searchPath: string): Promise<string> {
  const found = await findTool(name, searchPath);
  if (found === undefined) throw new MissingToolError(name, TOOL_HINTS[name] ?? "install it");
  return found;
}

async function isInstalled(libsDir: string, pom: string, kafkaVersion: string): Promise<boolean> {
  try {
    const marker = await Deno.readTextFile(join(libsDir, MARKER_FILE));
    if (marker !== pom) return false;
    const jar = await Deno.stat(join(libsDir, `kafka_2.13-${kafkaVersion}.jar`));
    return jar.isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}

function tailLines(text: string, count: number): string {
  return text.trimEnd().split("\n").slice(-count).join("\n");
}

/**
 * Tests that need an external tool (promtool, otelcol, prometheus): registered as ignored, with
 * the reason in the test name, when the tool is missing on a developer's machine, and failing
 * when it is missing under CI (`CI=true`), where `infra/tools/install_tools.sh` must have run.
 * Without the permissions to look tools up and run them (plain `deno test`) they are ignored,
 * with the reason printed once (tests/_permissions.ts).
 *
 * @module
 */

import { findExecutable } from "../_observability.ts";
import { granted, requires, type TestPermission } from "../_permissions.ts";
import { IN_CI } from "../_pipeline_process.ts";

/** What a tool test needs: the tool is looked up on `PATH`, run, and given files to read. */
const TOOL_PERMISSIONS: readonly TestPermission[] = ["env", "read", "write", "run", "net"];

/** How to get each tool, for the ignore reason and the CI failure. */
const INSTALL_HINT = "run infra/tools/install_tools.sh";

/** A tool's resolved path, or `undefined` when missing. */
export interface Tool {
  /** The name or path asked for. */
  readonly name: string;
  /** The absolute path, when found. */
  readonly path?: string;
}

/**
 * Looks a tool up by name on `PATH`, or by path. Without the permission to read `PATH` and the
 * file system, the tool counts as missing; {@linkcode toolTest} then ignores the test for the
 * missing permissions instead.
 */
export async function tool(name: string): Promise<Tool> {
  if (!granted("env", "read")) return { name };
  return { name, path: await findExecutable(name) };
}

/**
 * Registers `fn` as a test that needs `tools`. Missing tools make it ignored locally (the name
 * says why) and failed under CI. Without the permissions a tool test needs (environment, read,
 * write, run, loopback network) it is ignored.
 *
 * @example
 * ```ts ignore
 * const promtool = await tool("promtool");
 * toolTest("promtool accepts the config", [promtool], async ([path]) => { ... });
 * ```
 */
export function toolTest(
  name: string,
  tools: readonly Tool[],
  fn: (paths: string[]) => Promise<void> | void,
): void {
  const missing = tools.filter((t) => t.path === undefined).map((t) => `"${t.name}"`);
  if (requires(...TOOL_PERMISSIONS).ignore) {
    Deno.test({ name, ignore: true, fn: () => {} });
  } else if (missing.length === 0) {
    Deno.test(name, () => fn(tools.map((t) => t.path as string)));
  } else if (IN_CI) {
    Deno.test(name, () => {
      throw new Error(`Cannot run under CI: missing ${missing.join(", ")}: ${INSTALL_HINT}`);
    });
  } else {
    Deno.test({
      name: `${name} [ignored: missing ${missing.join(", ")}: ${INSTALL_HINT}]`,
      ignore: true,
      fn: () => {},
    });
  }
}

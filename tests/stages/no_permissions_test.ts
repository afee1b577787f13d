/**
 * A stage's own tests need no permissions: `deno test` with no flags runs them all, none
 * ignored. (The pipeline command's tests are not among them: the command charges its
 * in-process payment gateway over loopback HTTP, so its runs need `--allow-net`.) They are
 * run here in a child `deno test` that is granted nothing (this test needs
 * the permission to start it, so plain `deno test` ignores it and nothing recurses).
 *
 * @module
 */
import assert from "node:assert/strict";
import { requires } from "../_permissions.ts";

const REPO_ROOT = new URL("../../", import.meta.url).pathname;

/** Tests a user runs with plain `deno test` (the README shows the first). */
const STAGE_TESTS = [
  "tests/stages/payment_test.ts",
  "tests/stages/orders_pipeline_test.ts",
];

Deno.test(
  "the stage and orders pipeline tests pass under plain deno test, none ignored",
  requires("run"),
  async () => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--no-prompt", ...STAGE_TESTS],
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    const output = decoder.decode(stdout) + decoder.decode(stderr);
    assert.equal(code, 0, output);
    const summary = output.match(/^ok \| (\d+) passed \| 0 failed(?: \| (\d+) ignored)?/m);
    assert.ok(summary, `No summary line in:\n${output}`);
    assert.ok(Number(summary[1]) >= STAGE_TESTS.length, output);
    assert.equal(summary[2], undefined, `Some stage tests were ignored:\n${output}`);
  },
);

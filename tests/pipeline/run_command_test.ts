import assert from "node:assert/strict";
import { main, moduleUrl } from "../../pipeline/run_command.ts";
import { requires } from "../_permissions.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { stdout: (l: string) => out.push(l), stderr: (l: string) => err.push(l) },
  };
}
const never = new AbortController().signal;

Deno.test("run --help prints its usage and settings", async () => {
  const { out, io } = capture();
  assert.equal(await main(["--help"], {}, io, never), 0);
  assert.match(out[0], /^Usage: deno task run <module> \[options\]/);
  assert.ok(out[0].includes("HEALTH_PORT") && out[0].includes("--workers"));
});

Deno.test("run without a module returns 2 and says so", async () => {
  const { err, io } = capture();
  assert.equal(await main(["--workers", "2"], {}, io, never), 2);
  assert.deepEqual(err, ["error: Cannot run a pipeline as no module was given: see --help"]);
});

Deno.test("moduleUrl() resolves a path against where the command was typed", () => {
  assert.equal(moduleUrl("./p.ts", "/home/me/app"), "file:///home/me/app/p.ts");
  assert.equal(moduleUrl("/srv/p.ts", "/home/me"), "file:///srv/p.ts");
  assert.equal(moduleUrl("https://example.com/p.ts", "/x"), "https://example.com/p.ts");
});

Deno.test({
  name: "run refuses a module that exports no pipeline, naming it",
  // The command imports the module from a file and resolves it against the working directory.
  ...requires("read"),
  async fn() {
    const { err, io } = capture();
    const module = new URL("./_echo_pipeline.ts", import.meta.url).pathname;
    assert.equal(await main([module], {}, io, never), 1);
    assert.deepEqual(err, [
      `error: Cannot find a pipeline in "file://${module}": no export is a definePipeline() ` +
      'result (its exports are "createEchoPipeline")',
    ]);
  },
});

Deno.test({
  name: "run ./_echo_module.ts on the embedded transport starts the stage and drains at the signal",
  // The command imports the module from a file and resolves it against the working directory.
  ...requires("read"),
  async fn() {
    const { out, err, io } = capture();
    const stop = new AbortController();
    const module = new URL("./_echo_module.ts", import.meta.url).pathname;
    const running = main([module, "--workers", "2"], {}, io, stop.signal);
    const deadline = Date.now() + 10_000;
    while (!err.some((line) => line.startsWith('pipeline "echo"'))) {
      assert.ok(Date.now() < deadline, err.join("\n"));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.match(err[0], /on embedded \(in-process\): 2 in-process member\(s\)$/);
    stop.abort();
    assert.equal(await running, 0, err.join("\n"));
    assert.equal(JSON.parse(out[0]).summary.consumed, 0);
  },
});

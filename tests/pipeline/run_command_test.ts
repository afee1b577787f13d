import assert from "node:assert/strict";

// The command imports kafkajs, which reads the environment as it loads.
const envGranted = (await Deno.permissions.query({ name: "env" })).state === "granted";
const { main, moduleUrl } = envGranted
  ? await import("../../pipeline/run_command.ts")
  : { main: undefined as never, moduleUrl: undefined as never };

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

Deno.test({ name: "run --help prints its usage and settings", ignore: !envGranted }, async () => {
  const { out, io } = capture();
  assert.equal(await main(["--help"], {}, io, never), 0);
  assert.match(out[0], /^Usage: deno task run <module> \[options\]/);
  assert.ok(out[0].includes("HEALTH_PORT") && out[0].includes("--workers"));
});

Deno.test({ name: "run without a module returns 2 and says so", ignore: !envGranted }, async () => {
  const { err, io } = capture();
  assert.equal(await main(["--workers", "2"], {}, io, never), 2);
  assert.deepEqual(err, ["error: Cannot run a pipeline as no module was given: see --help"]);
});

Deno.test({
  name: "moduleUrl() resolves a path against where the command was typed",
  ignore: !envGranted,
}, () => {
  assert.equal(moduleUrl("./p.ts", "/home/me/app"), "file:///home/me/app/p.ts");
  assert.equal(moduleUrl("/srv/p.ts", "/home/me"), "file:///srv/p.ts");
  assert.equal(moduleUrl("https://example.com/p.ts", "/x"), "https://example.com/p.ts");
});

const permitted = (await Deno.permissions.query({ name: "read" })).state === "granted" &&
  (await Deno.permissions.query({ name: "env" })).state === "granted";

Deno.test({
  name: "run refuses a module that exports no pipeline, naming it",
  ignore: !permitted,
  async fn() {
    const { err, io } = capture();
    const module = new URL("./_echo_pipeline.ts", import.meta.url).pathname;
    assert.equal(await main([module], {}, io, never), 1);
    assert.deepEqual(err, [
      `error: Cannot run module "file://${module}" as it must export exactly one ` +
      "definePipeline result: it exports none",
    ]);
  },
});

Deno.test({
  name: "run ./_echo_module.ts on the embedded transport starts the stage and drains at the signal",
  ignore: !permitted,
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

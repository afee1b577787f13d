import assert from "node:assert/strict";
import { ConfigError } from "../../pipeline/errors.ts";
import { isPipeline } from "../../pipeline/definition.ts";
import { findPipelineExport, loadPipelineModule } from "../../pipeline/pipeline_module.ts";
import * as fixture from "../dashboards/_sensors_pipeline.ts";

const FIXTURE = new URL("../dashboards/_sensors_pipeline.ts", import.meta.url).pathname;

function refused(fn: () => unknown, message: RegExp, field: string): void {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.field, field);
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("isPipeline() knows only what definePipeline() made", () => {
  assert.equal(isPipeline(fixture.sensors), true);
  assert.equal(isPipeline(fixture.notAPipeline), false);
  assert.equal(isPipeline({ ...fixture.sensors }), false, "a copy is not validated");
  assert.equal(isPipeline(null), false);
});

Deno.test("findPipelineExport() takes the only pipeline export, whatever its name", () => {
  const found = findPipelineExport({ ...fixture, helper: () => 1 });
  assert.equal(found.exportName, "sensors");
  assert.equal(found.pipeline, fixture.sensors);
});

Deno.test("findPipelineExport() takes the named export, and refuses a wrong name", () => {
  const exports = { first: fixture.sensors, second: fixture.sensors, other: 1 };
  assert.equal(findPipelineExport(exports, { exportName: "second" }).exportName, "second");
  refused(
    () => findPipelineExport(exports),
    /^Cannot choose a pipeline in the module: exports "first", "second" are all pipelines: name one with --export$/,
    "--export",
  );
  refused(
    () => findPipelineExport(exports, { exportName: "third", moduleName: '"./p.ts"' }),
    /^Cannot find export "third" in "\.\/p\.ts": its exports are "first", "other", "second"$/,
    "--export",
  );
  refused(
    () => findPipelineExport(exports, { exportName: "other" }),
    /^Cannot use export "other" of the module as a pipeline: it is not a definePipeline\(\) result$/,
    "--export",
  );
  refused(
    () => findPipelineExport({ notAPipeline: fixture.notAPipeline }),
    /^Cannot find a pipeline in the module: no export is a definePipeline\(\) result \(its exports are "notAPipeline"\)$/,
    "--export",
  );
});

Deno.test("loadPipelineModule() imports a module by path and finds its pipeline", async () => {
  const found = await loadPipelineModule(FIXTURE);
  assert.equal(found.pipeline.name, "sensors");
  await assert.rejects(() => loadPipelineModule("./no/such/module.ts"), (error) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.field, "--pipeline");
    assert.match(error.message, /^Cannot import pipeline module "\.\/no\/such\/module\.ts": /);
    assert.ok(error.cause !== undefined);
    return true;
  });
});

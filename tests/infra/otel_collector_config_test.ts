/**
 * infra/otel-collector/config.yaml checked by `otelcol validate` with the Collector built from
 * infra/otel-collector/builder-config.yaml (the compose stack's contrib image has the same
 * components), and its pipelines checked against the stack.
 */

import assert from "node:assert/strict";
import { OTELCOL_BINARY } from "../_observability.ts";
import { type Doc, INFRA, readYaml } from "./_infra_files.ts";
import { tool, toolTest } from "./_tools.ts";
import { granted, requires } from "../_permissions.ts";

const otelcol = await tool(OTELCOL_BINARY);
const config: Doc = granted("read") ? await readYaml(INFRA.collector) : undefined;

async function validate(binary: string, path: string) {
  const output = await new Deno.Command(binary, {
    args: ["validate", `--config=${path}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, text: decoder.decode(output.stdout) + decoder.decode(output.stderr) };
}

toolTest("otelcol validates infra/otel-collector/config.yaml", [otelcol], async ([path]) => {
  const { code, text } = await validate(path, INFRA.collector);
  assert.equal(code, 0, text);
});

toolTest("otelcol rejects a misspelt exporter setting", [otelcol], async ([path]) => {
  const dir = await Deno.makeTempDir({ prefix: "otelcol_validate_" });
  try {
    const broken = (await Deno.readTextFile(INFRA.collector)).replace(
      "translation_strategy:",
      "translation_strategi:",
    );
    await Deno.writeTextFile(`${dir}/config.yaml`, broken);
    const { code, text } = await validate(path, `${dir}/config.yaml`);
    assert.notEqual(code, 0);
    assert.match(text, /translation_strategi/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "the Collector receives OTLP on 4317 and 4318 from any container",
  requires("read"),
  () => {
    assert.equal(config.receivers.otlp.protocols.grpc.endpoint, "0.0.0.0:4317");
    assert.equal(config.receivers.otlp.protocols.http.endpoint, "0.0.0.0:4318");
  },
);

Deno.test(
  "the Collector sends traces to Tempo and metrics to the Prometheus exporter",
  requires("read"),
  async () => {
    const tempo: Doc = await readYaml(INFRA.tempo);
    const { traces, metrics } = config.service.pipelines;
    assert.deepEqual(traces.exporters, ["otlp_grpc/tempo"]);
    const tempoGrpcPort = tempo.distributor.receivers.otlp.protocols.grpc.endpoint.split(":")[1];
    assert.equal(config.exporters["otlp_grpc/tempo"].endpoint, `tempo:${tempoGrpcPort}`);
    assert.deepEqual(metrics.exporters, ["prometheus"]);
    for (const pipeline of [traces, metrics]) {
      assert.equal(pipeline.processors[0], "memory_limiter", "memory_limiter must come first");
    }
  },
);

Deno.test(
  "the Prometheus exporter keeps resource attributes and exemplars",
  requires("read"),
  () => {
    const exporter = config.exporters.prometheus;
    assert.equal(exporter.enable_open_metrics, true);
    assert.ok(exporter.resource_constant_labels.included.includes("service.*"));
    assert.equal(exporter.translation_strategy, "UnderscoreEscapingWithSuffixes");
  },
);

Deno.test(
  "every component in the config is in the builder manifest",
  requires("read"),
  async () => {
    const manifest: Doc = await readYaml(INFRA.collectorManifest);
    const modules: string[] = ["receivers", "processors", "exporters", "extensions"].flatMap((
      kind,
    ) => (manifest[kind] ?? []).map((c: Doc) => String(c.gomod)));
    const moduleOf: Record<string, string> = {
      otlp: "receiver/otlpreceiver",
      memory_limiter: "processor/memorylimiterprocessor",
      batch: "processor/batchprocessor",
      otlp_grpc: "exporter/otlpexporter",
      otlp_http: "exporter/otlphttpexporter",
      prometheus: "exporter/prometheusexporter",
      debug: "exporter/debugexporter",
    };
    for (const kind of ["receivers", "processors", "exporters"]) {
      for (const id of Object.keys(config[kind] ?? {})) {
        const type = id.split("/")[0];
        const module = moduleOf[type];
        assert.ok(module, `unknown component type "${type}"`);
        assert.ok(modules.some((m) => m.includes(`/${module} `)), `"${type}" is not built`);
      }
    }
  },
);

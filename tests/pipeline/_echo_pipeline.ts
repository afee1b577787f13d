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

function shoutStage(keyed: boolean) {
  return defineStage({
    name: "shout",
    input: Note,
    output: Note,
    // Keyed by the note's id, the stage has state, restored from its changelog.
    key: keyed ? (note) => note.id : undefined,
    handle: (note) => Promise.resolve({ id: note.id, text: note.text.toUpperCase() }),
  });
}

/**
 * The echo pipeline over topics `<prefix>.in`, `<prefix>.out`, `<prefix>.dlq`; with `keyed`,
 * its stage is keyed (and has the changelog `<prefix>-shout-shout-changelog`).
 */
export function createEchoPipeline(
  options: { prefix?: string; keyed?: boolean } = {},
): Pipeline {
  const { prefix = "echo", keyed = false } = options;
  return definePipeline({
    name: "echo",
    topics: [
      { name: `${prefix}.in`, partitions: 3, schema: Note },
      { name: `${prefix}.out`, partitions: 3, schema: Note },
      { name: `${prefix}.dlq`, partitions: 1, deadLetter: true },
    ],
    sources: [{ name: "notes", output: `${prefix}.in`, schema: Note, key: (n) => n.id }],
    stages: [{
      stage: shoutStage(keyed),
      input: `${prefix}.in`,
      output: `${prefix}.out`,
      group: `${prefix}-shout`,
      deadLetter: `${prefix}.dlq`,
    }],
  });
}

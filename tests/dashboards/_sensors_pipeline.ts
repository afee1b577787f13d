/**
 * A pipeline that is not the orders pipeline, as a user's module would define it: two stages
 * (one with retry tiers), two groups, a source. `deno task dashboards --pipeline` is tested on
 * this module; `notAPipeline` is an export that must be skipped.
 *
 * @module
 */
import { z } from "zod";
import { definePipeline } from "../../pipeline/definition.ts";
import { retryPolicy } from "../../pipeline/retry.ts";
import { defineStage } from "../../pipeline/stage.ts";

const Reading = z.object({ sensor: z.string(), celsius: z.number() });
const Alert = z.object({ sensor: z.string(), message: z.string() });

const checkTemperature = defineStage({
  name: "check-temperature",
  input: Reading,
  output: Alert,
  handle: (reading) =>
    Promise.resolve(
      reading.celsius > 30 ? { sensor: reading.sensor, message: "too hot" } : null,
    ),
});

const notify = defineStage({
  name: "notify",
  input: Alert,
  output: null,
  handle: () => Promise.resolve(null),
});

/** The sensors pipeline. */
export const sensors = definePipeline({
  name: "sensors",
  topics: [
    { name: "readings", partitions: 3, schema: Reading },
    { name: "alerts", partitions: 2, schema: Alert },
    { name: "sensors.dlq", partitions: 1, deadLetter: true },
  ],
  sources: [{ name: "sensor-feed", output: "readings", schema: Reading }],
  stages: [
    {
      stage: checkTemperature,
      input: "readings",
      output: "alerts",
      group: "thermostat",
      deadLetter: "sensors.dlq",
      concurrency: 2,
      retry: retryPolicy({ tiers: [{ delayMs: 1000 }, { delayMs: 5000 }] }),
    },
    { stage: notify, input: "alerts", group: "notifier", deadLetter: "sensors.dlq" },
  ],
});

/** Not a pipeline: the generator must skip it. */
export const notAPipeline = { name: "sensors", stages: [] };

/**
 * The entry point of `deno task pipeline`. SIGINT/SIGTERM drain gracefully: stop generating,
 * finish what is in flight, commit, print the summary, exit 0. A second signal exits at once.
 *
 * @module
 */
import { main } from "./app.ts";

if (import.meta.main) {
  const controller = new AbortController();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const name of signals) {
    Deno.addSignalListener(name, () => {
      if (controller.signal.aborted) Deno.exit(130);
      console.error(`${name} received: stopping generation and draining (again to exit now)`);
      controller.abort(new Error(`${name} received`));
    });
  }
  const code = await main(Deno.args, Deno.env.toObject(), {
    stdout: (line) => console.log(line),
    stderr: (line) => console.error(line),
  }, controller.signal);
  Deno.exit(code);
}

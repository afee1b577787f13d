/**
 * The entry point of `deno task pipeline`. SIGINT/SIGTERM drain gracefully: stop generating,
 * finish what is in flight, commit, print the summary, exit 0. A second signal exits at once.
 *
 * @module
 */
import { main } from "./app.ts";
import { runCommand } from "./command.ts";

if (import.meta.main) {
  await runCommand(main, "stopping generation and draining");
}

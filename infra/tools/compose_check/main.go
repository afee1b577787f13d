// Command compose_check loads a Compose file with compose-go, the loader Docker Compose itself
// uses: the current Compose JSON schema, interpolation, normalisation and the semantic checks
// (unknown services in depends_on, profiles, ...). Variables are interpolated from the process
// environment, as `docker compose` does, so a required `${VAR:?message}` fails the load when
// VAR is unset. It prints the services it found and exits non-zero when the file does not load.
// tests/infra/compose_test.ts runs it.
//
//	go run ./infra/tools/compose_check infra/compose.yaml
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose_check <compose.yaml>")
		os.Exit(2)
	}
	path, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	options, err := cli.NewProjectOptions(
		[]string{path},
		cli.WithName("orders-pipeline"),
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithOsEnv,
		// Every profile, so the `app` service is loaded and checked too.
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	names := project.ServiceNames()
	sort.Strings(names)
	for _, name := range names {
		fmt.Println(name)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "Cannot load the Compose file: %v\n", err)
	os.Exit(1)
}

// compose-check loads a compose file the way `docker compose config` does (same library:
// compose-go), which validates it against the Compose specification's JSON schema, resolves
// interpolation, env files, depends_on and the other cross references, and prints the
// resolved services. It needs no Docker daemon.
//
//	compose-check path/to/compose.yaml
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
		fmt.Fprintln(os.Stderr, "usage: compose-check COMPOSE_FILE")
		os.Exit(2)
	}
	file, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	options, err := cli.NewProjectOptions(
		[]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithResolvedPaths(true),
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
	fmt.Printf("project %q: %d services\n", project.Name, len(names))
	for _, name := range names {
		service := project.Services[name]
		image := service.Image
		if service.Build != nil {
			image = fmt.Sprintf("%s (built from %s)", image, service.Build.Dockerfile)
		}
		fmt.Printf("  %-12s %s\n", name, image)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "compose-check: %v\n", err)
	os.Exit(1)
}

// Command hpcml is the whole platform in one binary: the control plane
// (`hpcml server`), the CLI, and the in-job wrapper (`hpcml __wrap`).
package main

import (
	"os"

	"github.com/hpcml/hpcml/internal/task"
)

func main() {
	// The wrapper runs for every job attempt: dispatch it before building
	// the CLI so that job start-up pays as little as possible.
	if len(os.Args) == 3 && os.Args[1] == "__wrap" {
		os.Exit(task.Wrap(os.Args[2]))
	}
	os.Exit(runCLI())
}

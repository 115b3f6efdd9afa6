package collective_test

import (
	"context"
	"errors"
	"log"
	"os"

	"github.com/hpcml/hpcml/internal/collective"
)

// A program in an hpcml job of several tasks (`hpcml job submit
// --tasks-per-node 2 -- ./prog`) joins its group from the job's HPCML_*
// variables and averages a gradient across the ranks.
func Example() {
	ctx := context.Background()
	cfg, err := collective.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	cfg.Fingerprint = "mlp-784-256-10" // every rank must agree
	g, err := collective.Join(ctx, cfg)
	if err != nil {
		log.Fatal(err) // e.g. "collective: rendezvous: rank 3 of 4 did not join within 60s"
	}
	defer g.Close()

	grad := make([]float32, 1<<20)
	for i := range grad {
		grad[i] = float32(g.Rank())
	}
	if err := g.AllReduce(ctx, grad, collective.Mean); err != nil {
		var pe *collective.PeerError
		if errors.As(err, &pe) {
			log.Printf("rank %d (%s) %s", pe.Rank, pe.Addr, pe.Reason)
		}
		log.Fatal(err)
	}
	// grad[i] == (0+1+…+(n-1))/n on every rank, bit for bit.
}

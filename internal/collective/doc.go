// Package collective lets the processes of a job exchange float32 data:
// a rendezvous, then ring all-reduce, reduce-scatter, all-gather,
// broadcast, barrier and point-to-point send/receive over TCP, with ring
// neighbours on the same host moving the collectives' data through shared
// memory (shm.go). It is what
// hpcml's data-parallel and pipeline-parallel training run on, and any Go
// program in an hpcml job of several tasks can use it on its own.
//
// # Use
//
// Every task of `hpcml job submit --tasks-per-node 2 -- ./prog` (or
// --nodes N, locally or under Slurm) gets HPCML_RANK, HPCML_WORLD_SIZE,
// HPCML_MASTER_ADDR and HPCML_MASTER_PORT; ConfigFromEnv reads them:
//
//	func main() {
//		ctx := context.Background()
//		cfg, err := collective.ConfigFromEnv(os.Getenv)
//		if err != nil {
//			log.Fatal(err)
//		}
//		cfg.Fingerprint = "mlp-784-256-10" // what all ranks must agree on
//		g, err := collective.Join(ctx, cfg)
//		if err != nil {
//			log.Fatal(err) // e.g. "collective: rendezvous: rank 3 of 4 did not join within 60s"
//		}
//		defer g.Close()
//
//		grad := make([]float32, 1<<20)
//		for i := range grad {
//			grad[i] = float32(g.Rank())
//		}
//		if err := g.AllReduce(ctx, grad, collective.Mean); err != nil {
//			// Every rank fails alike, naming the rank at the origin:
//			// "collective: all-reduce: rank 1 (10.0.0.2:40123) lost: EOF".
//			var pe *collective.PeerError
//			if errors.As(err, &pe) {
//				log.Printf("rank %d failed: %s", pe.Rank, pe.Reason)
//			}
//			log.Fatal(err)
//		}
//		// grad[i] == (0+1+...+(n-1))/n on every rank, bit for bit.
//	}
//
// # Semantics
//
// Collectives must be called by every rank in the same order, with the
// same lengths (and root); each call carries a header that the next rank
// checks, so a rank that calls something else fails the group with an
// error saying what each called instead of exchanging garbage. A Group
// runs one collective at a time; Send and Recv may run concurrently with
// it and with each other.
//
// AllReduce is a ring reduce-scatter followed by a ring all-gather,
// pipelined in segments; a rank whose two links are of one kind drives
// both from one progress loop (ring.go describes the other paths). Every
// element is reduced once, on the rank that owns its chunk, and copied to
// the others, so all ranks hold bit-identical results; the order of the
// additions is fixed by the world size and the length (see Shard and
// ring.go), so results are reproducible.
//
// # Failures
//
// A peer that dies (connection reset, EOF) or makes no progress for
// Config.Timeout fails the operation on every rank with a *PeerError
// naming it; rank 0 collects what the ranks saw and sends every rank the
// same verdict. A cancelled context fails the operation (and the group)
// at once on this rank and, through rank 0, on the others. After a
// failure the Group is unusable: every later call returns the error. A
// context that has ended before a call starts only fails that call.
//
// There is no authentication: run groups on a trusted network (hpcml's
// local backend uses the loopback interface). Connections other than the
// group's (a wrong session) are refused.
package collective

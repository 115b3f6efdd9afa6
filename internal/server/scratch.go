package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	// serverIDFile names this data dir's server for good (it moves with
	// the data dir).
	serverIDFile = "server-id"
	// scratchOwnerFile in a scratch dir holds the server id of the data
	// dir whose jobs live there.
	scratchOwnerFile = "hpcml-owner"
)

// claimScratchDir binds scratchDir to the server of dataDir, or refuses
// it if it holds another server's jobs. Attempt dirs are named by job id
// and attempt alone, so a second server there (at the same time or later)
// would share the first's executor, wipe its attempt dirs on relaunch and
// by retention, and serve its logs as its own.
func claimScratchDir(dataDir, scratchDir string) error {
	id, err := writeOnce(filepath.Join(dataDir, serverIDFile), []byte(randomHex(16)+"\n"))
	if err != nil {
		return fmt.Errorf("server id: %w", err)
	}
	if err := os.MkdirAll(scratchDir, 0o700); err != nil {
		return fmt.Errorf("create scratch dir: %w", err)
	}
	owner, err := writeOnce(filepath.Join(scratchDir, scratchOwnerFile), id)
	if err != nil {
		return fmt.Errorf("claim scratch dir: %w", err)
	}
	if mine, theirs := strings.TrimSpace(string(id)), strings.TrimSpace(string(owner)); mine != theirs {
		return fmt.Errorf("scratch dir %s holds the jobs of another hpcml server (%s names server %s; this data dir's is %s): give each server a scratch dir of its own",
			scratchDir, scratchOwnerFile, theirs, mine)
	}
	return nil
}

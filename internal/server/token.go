package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
)

// TokenFile is the name of the token file in the data dir.
const TokenFile = "token"

// loadOrCreateToken returns the server's bearer token, creating it (mode
// 0600, never overwritten) at first start.
func loadOrCreateToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	data, err := writeOnce(path, []byte(randomHex(32)+"\n"))
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < 16 {
		return "", fmt.Errorf("token file %s is too short (at least 16 characters)", path)
	}
	return tok, nil
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	raw := make([]byte, n)
	rand.Read(raw) // never fails (crypto/rand)
	return hex.EncodeToString(raw)
}

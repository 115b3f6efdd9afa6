package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Environment the client reads; the names are part of the user contract.
const (
	EnvServer  = "HPCML_SERVER"
	EnvToken   = "HPCML_TOKEN"
	EnvDataDir = "HPCML_DATA_DIR"

	DefaultServer  = "http://127.0.0.1:8080"
	DefaultDataDir = ".hpcml"
)

// Config is where the server is and how to authenticate to it.
type Config struct {
	Server string
	Token  string
	// TokenFile is the file the token was read from, or would have been
	// read from had it existed; empty when the token came from HPCML_TOKEN.
	// The CLI names it when the server refuses the token.
	TokenFile string
}

// ConfigFromEnv reads HPCML_SERVER and HPCML_TOKEN through getenv. Without
// HPCML_TOKEN it reads <data-dir>/token, data-dir being $HPCML_DATA_DIR or
// ./.hpcml: on a laptop the server and the CLI share that directory, so
// the CLI works with no configuration at all. A missing token file is not
// an error (the server will say the token is missing); an unreadable one is.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{Server: strings.TrimSpace(getenv(EnvServer)), Token: strings.TrimSpace(getenv(EnvToken))}
	if cfg.Server == "" {
		cfg.Server = DefaultServer
	}
	if cfg.Token != "" {
		return cfg, nil
	}
	dir := getenv(EnvDataDir)
	if dir == "" {
		dir = DefaultDataDir
	}
	cfg.TokenFile = filepath.Join(dir, "token")
	b, err := os.ReadFile(cfg.TokenFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return cfg, nil
	case err != nil:
		return cfg, fmt.Errorf("read token: %w", err)
	}
	cfg.Token = strings.TrimSpace(string(b))
	return cfg, nil
}

// FromEnv returns a client configured from the environment (see ConfigFromEnv).
func FromEnv() (*Client, error) {
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	return New(cfg.Server, cfg.Token), nil
}

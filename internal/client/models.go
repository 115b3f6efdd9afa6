package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hpcml/hpcml/internal/registry"
)

// ModelVersion is a version with the aliases that point at it now.
type ModelVersion struct {
	registry.Version
	Aliases []string `json:"aliases"`
}

// ModelAlias is where an alias points after a change, and where it
// pointed before (0: it is new).
type ModelAlias struct {
	Model    string `json:"model"`
	Alias    string `json:"alias"`
	Version  int    `json:"version"`
	Previous int    `json:"previous,omitempty"`
}

// RegisterModel registers an artefact (or a training job's model) as the
// next version of a model. The server reads and checks the whole file, so
// the call waits up to 10 minutes.
func (c *Client) RegisterModel(ctx context.Context, req registry.RegisterRequest) (*registry.Version, error) {
	var out registry.Version
	if err := c.do(ctx, http.MethodPost, "/api/v1/models", nil, req, &out, 10*time.Minute); err != nil {
		return nil, fmt.Errorf("register model %s: %w", req.Name, err)
	}
	return &out, nil
}

// ListModels lists models with their aliases and latest versions.
func (c *Client) ListModels(ctx context.Context) ([]*registry.Model, error) {
	var out []*registry.Model
	if err := c.do(ctx, http.MethodGet, "/api/v1/models", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	return out, nil
}

// GetModel reads a model with every version, newest first.
func (c *Client) GetModel(ctx context.Context, name string) (*registry.Model, error) {
	var out registry.Model
	if err := c.do(ctx, http.MethodGet, modelPath(name), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get model %s: %w", name, err)
	}
	return &out, nil
}

// ListModelVersions lists a model's versions, newest first.
func (c *Client) ListModelVersions(ctx context.Context, name string) ([]ModelVersion, error) {
	var out []ModelVersion
	if err := c.do(ctx, http.MethodGet, modelPath(name)+"/versions", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list versions of model %s: %w", name, err)
	}
	return out, nil
}

// modelPath is the API path of model name.
func modelPath(name string) string { return "/api/v1/models/" + url.PathEscape(name) }

// aliasPath is the API path of an alias of model name.
func aliasPath(name, alias string) string {
	return modelPath(name) + "/aliases/" + url.PathEscape(alias)
}

// refPath is the API path of a reference's version.
func refPath(ref registry.Ref) string {
	sel := registry.Latest
	switch {
	case ref.Version > 0:
		sel = strconv.Itoa(ref.Version)
	case ref.Alias != "":
		sel = ref.Alias
	}
	return modelPath(ref.Name) + "/versions/" + url.PathEscape(sel)
}

// GetModelVersion reads the version a reference names.
func (c *Client) GetModelVersion(ctx context.Context, ref registry.Ref) (*ModelVersion, error) {
	var out ModelVersion
	if err := c.do(ctx, http.MethodGet, refPath(ref), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get model %s: %w", ref, err)
	}
	return &out, nil
}

// DownloadModel writes the artefact of the version ref names to w and
// checks it against the SHA-256 the server recorded; it returns the
// version number and the byte count. A mismatch is an error (w then
// holds bytes that must not be used).
func (c *Client) DownloadModel(ctx context.Context, ref registry.Ref, w io.Writer) (version int, n int64, err error) {
	req, err := c.newRequest(ctx, http.MethodGet, refPath(ref)+"/artifact", nil, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Accept", "application/octet-stream")
	resp, err := c.send(req)
	if err != nil {
		return 0, 0, fmt.Errorf("download model %s: %w", ref, err)
	}
	defer resp.Body.Close()
	version, _ = strconv.Atoi(resp.Header.Get("X-Hpcml-Model-Version"))
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(w, h), resp.Body)
	if err != nil {
		return version, n, fmt.Errorf("download model %s: %w", ref, err)
	}
	if want, got := resp.Header.Get("X-Hpcml-Sha256"), hex.EncodeToString(h.Sum(nil)); want != got {
		return version, n, fmt.Errorf("download model %s: the %d bytes received have SHA-256 %s, the registry recorded %q", ref, n, got, want)
	}
	return version, n, nil
}

// SetModelAlias points alias at version of model name.
func (c *Client) SetModelAlias(ctx context.Context, name, alias string, version int) (*ModelAlias, error) {
	var out ModelAlias
	body := map[string]int{"version": version}
	if err := c.do(ctx, http.MethodPut, aliasPath(name, alias), nil, body, &out, 0); err != nil {
		return nil, fmt.Errorf("set alias %s of model %s: %w", alias, name, err)
	}
	return &out, nil
}

// DeleteModelAlias removes an alias of model name.
func (c *Client) DeleteModelAlias(ctx context.Context, name, alias string) error {
	if err := c.do(ctx, http.MethodDelete, aliasPath(name, alias), nil, nil, nil, 0); err != nil {
		return fmt.Errorf("delete alias %s of model %s: %w", alias, name, err)
	}
	return nil
}

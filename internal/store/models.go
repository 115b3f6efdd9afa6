package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ModelVersionRow is one registered version of a model as the store keeps
// it: the columns that queries need, and Record, the registry's whole
// immutable record of the version as JSON (the store does not interpret
// it, so the registry can grow its record without a migration).
type ModelVersionRow struct {
	Model     string
	Version   int
	SHA256    string
	Size      int64
	CreatedAt time.Time
	Record    []byte
}

// ModelRow is a model: its versions (newest first, only in GetModel),
// its latest version and its aliases (alias -> version).
type ModelRow struct {
	Name      string
	CreatedAt time.Time
	// Count is the number of versions.
	Count    int
	Latest   *ModelVersionRow
	Versions []ModelVersionRow
	Aliases  map[string]int
}

// ModelStore persists the model registry's metadata. Artefacts live in
// object storage; a version is visible once its row is.
type ModelStore interface {
	// NextModelVersion is the number the next version of model would get
	// (1 for an unknown model). It reserves nothing: AddModelVersion of
	// that number fails with ErrExists if another insert took it first.
	NextModelVersion(ctx context.Context, model string) (int, error)
	// AddModelVersion inserts v (creating the model) in one transaction;
	// ErrExists if the model already has v.Version.
	AddModelVersion(ctx context.Context, v *ModelVersionRow) error
	// GetModelVersion reads one version; ErrNotFound if absent.
	GetModelVersion(ctx context.Context, model string, version int) (*ModelVersionRow, error)
	// GetModel reads a model with all its versions and aliases.
	GetModel(ctx context.Context, name string) (*ModelRow, error)
	// ListModels lists models by name, each with its latest version and
	// its aliases (Versions is left empty).
	ListModels(ctx context.Context) ([]*ModelRow, error)
	// SetModelAlias points alias at version of model, creating or moving
	// it; ErrNotFound if the version does not exist. It returns the
	// version the alias pointed at before (0 if it is new).
	SetModelAlias(ctx context.Context, model, alias string, version int) (int, error)
	// DeleteModelAlias removes an alias; ErrNotFound if it is not set.
	DeleteModelAlias(ctx context.Context, model, alias string) error
	// ModelAlias is the version alias points at; ErrNotFound if unset.
	ModelAlias(ctx context.Context, model, alias string) (int, error)
}

const modelVersionCols = `model, version, sha256, size, created_at, record`

func scanModelVersion(row interface{ Scan(...any) error }) (ModelVersionRow, error) {
	var v ModelVersionRow
	var created int64
	var rec string
	err := row.Scan(&v.Model, &v.Version, &v.SHA256, &v.Size, &created, &rec)
	v.CreatedAt = time.Unix(0, created).UTC()
	v.Record = []byte(rec)
	return v, err
}

// NextModelVersion implements ModelStore.
func (s *SQLite) NextModelVersion(ctx context.Context, model string) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model = ?`, model).Scan(&n); err != nil {
		return 0, fmt.Errorf("next version of model %s: %w", model, err)
	}
	return n, nil
}

// AddModelVersion implements ModelStore. The model and its version row go
// in together, so a reader never sees a model without a version.
func (s *SQLite) AddModelVersion(ctx context.Context, v *ModelVersionRow) error {
	if v.CreatedAt.IsZero() {
		v.CreatedAt = time.Now().UTC()
	}
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO models(name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING`,
			v.Model, v.CreatedAt.UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO model_versions(`+modelVersionCols+`) VALUES (?,?,?,?,?,?)
			ON CONFLICT(model, version) DO NOTHING`,
			v.Model, v.Version, v.SHA256, v.Size, v.CreatedAt.UnixNano(), string(v.Record))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add version %d of model %s: %w", v.Version, v.Model, err)
	}
	return nil
}

// GetModelVersion implements ModelStore.
func (s *SQLite) GetModelVersion(ctx context.Context, model string, version int) (*ModelVersionRow, error) {
	v, err := scanModelVersion(s.r.QueryRowContext(ctx, `SELECT `+modelVersionCols+` FROM model_versions
		WHERE model = ? AND version = ?`, model, version))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("model %s version %d: %w", model, version, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get model %s version %d: %w", model, version, err)
	}
	return &v, nil
}

// GetModel implements ModelStore.
func (s *SQLite) GetModel(ctx context.Context, name string) (*ModelRow, error) {
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT created_at FROM models WHERE name = ?`, name).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("model %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get model %s: %w", name, err)
	}
	m := &ModelRow{Name: name, CreatedAt: time.Unix(0, created).UTC()}
	rows, err := s.r.QueryContext(ctx, `SELECT `+modelVersionCols+` FROM model_versions WHERE model = ? ORDER BY version DESC`, name)
	if err != nil {
		return nil, fmt.Errorf("versions of model %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scanModelVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("versions of model %s: %w", name, err)
		}
		m.Versions = append(m.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("versions of model %s: %w", name, err)
	}
	m.Count = len(m.Versions)
	if m.Count > 0 {
		latest := m.Versions[0]
		m.Latest = &latest
	}
	aliases, err := s.modelAliases(ctx, name)
	if err != nil {
		return nil, err
	}
	m.Aliases = aliases[name]
	if m.Aliases == nil {
		m.Aliases = map[string]int{}
	}
	return m, nil
}

// modelAliases reads the aliases of one model, or of all when name is "".
func (s *SQLite) modelAliases(ctx context.Context, name string) (map[string]map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT model, alias, version FROM model_aliases WHERE ? = '' OR model = ?`, name, name)
	if err != nil {
		return nil, fmt.Errorf("model aliases: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var model, alias string
		var v int
		if err := rows.Scan(&model, &alias, &v); err != nil {
			return nil, fmt.Errorf("model aliases: %w", err)
		}
		if out[model] == nil {
			out[model] = map[string]int{}
		}
		out[model][alias] = v
	}
	return out, rows.Err()
}

// ListModels implements ModelStore.
func (s *SQLite) ListModels(ctx context.Context) ([]*ModelRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT m.name, m.created_at,
		(SELECT COUNT(*) FROM model_versions WHERE model = m.name),
		v.model, v.version, v.sha256, v.size, v.created_at, v.record
		FROM models m JOIN model_versions v ON v.model = m.name
		WHERE v.version = (SELECT MAX(version) FROM model_versions WHERE model = m.name)
		ORDER BY m.name`)
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	defer rows.Close()
	out := []*ModelRow{}
	for rows.Next() {
		var m ModelRow
		var created, vcreated int64
		var v ModelVersionRow
		var rec string
		if err := rows.Scan(&m.Name, &created, &m.Count, &v.Model, &v.Version, &v.SHA256, &v.Size, &vcreated, &rec); err != nil {
			return nil, fmt.Errorf("list models: %w", err)
		}
		m.CreatedAt = time.Unix(0, created).UTC()
		v.CreatedAt = time.Unix(0, vcreated).UTC()
		v.Record = []byte(rec)
		m.Latest = &v
		out = append(out, &m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	aliases, err := s.modelAliases(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, m := range out {
		m.Aliases = aliases[m.Name]
		if m.Aliases == nil {
			m.Aliases = map[string]int{}
		}
	}
	return out, nil
}

// SetModelAlias implements ModelStore.
func (s *SQLite) SetModelAlias(ctx context.Context, model, alias string, version int) (int, error) {
	prev := 0
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM model_versions WHERE model = ? AND version = ?`, model, version).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("model %s version %d: %w", model, version, ErrNotFound)
		}
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT version FROM model_aliases WHERE model = ? AND alias = ?`, model, alias).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO model_aliases(model, alias, version, updated_at) VALUES (?,?,?,?)
			ON CONFLICT(model, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
			model, alias, version, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("set alias %s of model %s: %w", alias, model, err)
	}
	return prev, nil
}

// DeleteModelAlias implements ModelStore.
func (s *SQLite) DeleteModelAlias(ctx context.Context, model, alias string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM model_aliases WHERE model = ? AND alias = ?`, model, alias)
	if err != nil {
		return fmt.Errorf("delete alias %s of model %s: %w", alias, model, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("alias %s of model %s: %w", alias, model, ErrNotFound)
	}
	return nil
}

// ModelAlias implements ModelStore.
func (s *SQLite) ModelAlias(ctx context.Context, model, alias string) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT version FROM model_aliases WHERE model = ? AND alias = ?`, model, alias).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("alias %s of model %s: %w", alias, model, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("alias %s of model %s: %w", alias, model, err)
	}
	return v, nil
}

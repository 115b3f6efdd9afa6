package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hpcml/hpcml/internal/dataset"
)

const versionCols = `dataset, version, source, files, bytes, digest, manifest_key, created_at`

func scanVersion(row interface{ Scan(...any) error }) (dataset.Version, error) {
	var v dataset.Version
	var created int64
	err := row.Scan(&v.Dataset, &v.Version, &v.Source, &v.Files, &v.Bytes, &v.Digest, &v.ManifestKey, &created)
	v.CreatedAt = time.Unix(0, created).UTC()
	return v, err
}

// AddDatasetVersion implements Store. The version number is taken in the
// same transaction as the insert, so two concurrent adds cannot collide.
func (s *SQLite) AddDatasetVersion(ctx context.Context, v *dataset.Version) (*dataset.Version, bool, error) {
	var out *dataset.Version
	created := false
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		now := time.Now().UTC()
		if v.CreatedAt.IsZero() {
			v.CreatedAt = now
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO datasets(name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING`,
			v.Dataset, v.CreatedAt.UnixNano()); err != nil {
			return err
		}
		latest, err := scanVersion(tx.QueryRowContext(ctx, `SELECT `+versionCols+` FROM dataset_versions
			WHERE dataset = ? ORDER BY version DESC LIMIT 1`, v.Dataset))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case latest.Digest == v.Digest:
			out = &latest
			return nil
		}
		v.Version = latest.Version + 1
		if _, err := tx.ExecContext(ctx, `INSERT INTO dataset_versions(`+versionCols+`) VALUES (?,?,?,?,?,?,?,?)`,
			v.Dataset, v.Version, v.Source, v.Files, v.Bytes, v.Digest, v.ManifestKey, v.CreatedAt.UnixNano()); err != nil {
			return err
		}
		cp := *v
		out, created = &cp, true
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("add version of dataset %s: %w", v.Dataset, err)
	}
	return out, created, nil
}

// GetDataset implements Store.
func (s *SQLite) GetDataset(ctx context.Context, name string) (*dataset.Dataset, error) {
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT created_at FROM datasets WHERE name = ?`, name).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("dataset %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get dataset %s: %w", name, err)
	}
	d := &dataset.Dataset{Name: name, CreatedAt: time.Unix(0, created).UTC()}
	rows, err := s.r.QueryContext(ctx, `SELECT `+versionCols+` FROM dataset_versions WHERE dataset = ? ORDER BY version DESC`, name)
	if err != nil {
		return nil, fmt.Errorf("versions of dataset %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, err
		}
		d.Versions = append(d.Versions, v)
	}
	if len(d.Versions) > 0 {
		latest := d.Versions[0]
		d.Latest = &latest
	}
	return d, rows.Err()
}

// ListDatasets implements Store.
func (s *SQLite) ListDatasets(ctx context.Context) ([]*dataset.Dataset, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT d.name, d.created_at, `+versionColsOf("v")+`
		FROM datasets d JOIN dataset_versions v ON v.dataset = d.name
		WHERE v.version = (SELECT MAX(version) FROM dataset_versions WHERE dataset = d.name)
		ORDER BY d.name`)
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	defer rows.Close()
	out := []*dataset.Dataset{}
	for rows.Next() {
		var d dataset.Dataset
		var created, vcreated int64
		var v dataset.Version
		if err := rows.Scan(&d.Name, &created, &v.Dataset, &v.Version, &v.Source, &v.Files, &v.Bytes, &v.Digest,
			&v.ManifestKey, &vcreated); err != nil {
			return nil, err
		}
		d.CreatedAt = time.Unix(0, created).UTC()
		v.CreatedAt = time.Unix(0, vcreated).UTC()
		d.Latest = &v
		out = append(out, &d)
	}
	return out, rows.Err()
}

func versionColsOf(alias string) string {
	return alias + ".dataset, " + alias + ".version, " + alias + ".source, " + alias + ".files, " + alias + ".bytes, " +
		alias + ".digest, " + alias + ".manifest_key, " + alias + ".created_at"
}

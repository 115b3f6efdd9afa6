package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

// ErrDeploymentRunning is returned when a deployment is started on an
// endpoint that already has one running (it is an ErrExists: 409).
var ErrDeploymentRunning = fmt.Errorf("a deployment is already running on this endpoint: %w", ErrExists)

// EndpointStore persists real-time endpoints, their deployments and
// scale events (migration 5). Every method is one transaction.
type EndpointStore interface {
	// CreateEndpoint stores a new endpoint; ErrExists if the name is taken.
	CreateEndpoint(ctx context.Context, e *endpoint.Endpoint) error
	GetEndpoint(ctx context.Context, name string) (*endpoint.Endpoint, error)
	// ListEndpoints lists endpoints by name.
	ListEndpoints(ctx context.Context) ([]*endpoint.Endpoint, error)
	// UpdateEndpoint writes e's spec, state and reason (ErrNotFound if it
	// is gone).
	UpdateEndpoint(ctx context.Context, e *endpoint.Endpoint) error
	// DeleteEndpoint removes an endpoint with its deployments and scale
	// events.
	DeleteEndpoint(ctx context.Context, name string) error

	// StartDeployment stores d as the endpoint's running deployment,
	// setting d.ID and d.To.Revision (= d.ID), and puts the endpoint in state updating, together;
	// ErrDeploymentRunning if one already runs, ErrNotFound if the
	// endpoint does not exist.
	StartDeployment(ctx context.Context, d *endpoint.Deployment, events []endpoint.Event) error
	// UpdateDeployment writes d's progress (phase, step, state, outcome,
	// reason, end) and appends events; when ep is not nil its spec,
	// state and reason are written in the same transaction (a deployment
	// that ends changes the endpoint).
	UpdateDeployment(ctx context.Context, d *endpoint.Deployment, events []endpoint.Event, ep *endpoint.Endpoint) error
	GetDeployment(ctx context.Context, id int64) (*endpoint.Deployment, error)
	// ListDeployments lists an endpoint's deployments, newest first, each
	// with its events.
	ListDeployments(ctx context.Context, endpointName string, limit int) ([]*endpoint.Deployment, error)
	// RunningDeployments lists every deployment not yet ended, oldest first.
	RunningDeployments(ctx context.Context) ([]*endpoint.Deployment, error)

	// AddScaleEvent records a scale event and writes ep (whose variant
	// now has the new size) in the same transaction.
	AddScaleEvent(ctx context.Context, ev *endpoint.ScaleEvent, ep *endpoint.Endpoint) error
	// ListScaleEvents lists an endpoint's scale events, newest first.
	ListScaleEvents(ctx context.Context, endpointName string, limit int) ([]endpoint.ScaleEvent, error)
}

// endpointsMigration is migration 5.
const endpointsMigration = `CREATE TABLE endpoints (
		name       TEXT PRIMARY KEY,
		spec       TEXT    NOT NULL,
		state      TEXT    NOT NULL,
		reason     TEXT    NOT NULL DEFAULT '',
		token      TEXT    NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE TABLE deployments (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		endpoint   TEXT    NOT NULL REFERENCES endpoints(name) ON DELETE CASCADE,
		variant    TEXT    NOT NULL,
		from_spec  TEXT    NOT NULL,
		to_spec    TEXT    NOT NULL,
		strategy   TEXT    NOT NULL,
		alarms     TEXT    NOT NULL,
		phase      TEXT    NOT NULL DEFAULT '',
		step       INTEGER NOT NULL DEFAULT 0,
		state      TEXT    NOT NULL DEFAULT '',
		outcome    TEXT    NOT NULL DEFAULT '',
		reason     TEXT    NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		ended_at   INTEGER
	);
	-- One running deployment per endpoint, enforced by the database.
	CREATE UNIQUE INDEX deployments_running ON deployments(endpoint) WHERE outcome = '';
	CREATE INDEX deployments_endpoint ON deployments(endpoint, id);
	CREATE TABLE deployment_events (
		deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
		at            INTEGER NOT NULL,
		message       TEXT    NOT NULL
	);
	CREATE INDEX deployment_events_deployment ON deployment_events(deployment_id);
	CREATE TABLE scale_events (
		id        INTEGER PRIMARY KEY AUTOINCREMENT,
		endpoint  TEXT    NOT NULL REFERENCES endpoints(name) ON DELETE CASCADE,
		variant   TEXT    NOT NULL,
		from_n    INTEGER NOT NULL,
		to_n      INTEGER NOT NULL,
		reason    TEXT    NOT NULL,
		at        INTEGER NOT NULL
	);
	CREATE INDEX scale_events_endpoint ON scale_events(endpoint, id);`

const endpointCols = `name, spec, state, reason, token, created_at, updated_at`

func scanEndpoint(row interface{ Scan(...any) error }) (*endpoint.Endpoint, error) {
	var e endpoint.Endpoint
	var spec string
	var created, updated int64
	if err := row.Scan(&e.Name, &spec, &e.State, &e.Reason, &e.Token, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(spec), &e.Spec); err != nil {
		return nil, fmt.Errorf("endpoint %s: spec: %w", e.Name, err)
	}
	e.CreatedAt, e.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return &e, nil
}

// CreateEndpoint implements EndpointStore.
func (s *SQLite) CreateEndpoint(ctx context.Context, e *endpoint.Endpoint) error {
	spec, err := json.Marshal(e.Spec)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	e.UpdatedAt = e.CreatedAt
	res, err := s.w.ExecContext(ctx, `INSERT INTO endpoints(`+endpointCols+`) VALUES (?,?,?,?,?,?,?) ON CONFLICT(name) DO NOTHING`,
		e.Name, string(spec), e.State, e.Reason, e.Token, e.CreatedAt.UnixNano(), e.UpdatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("create endpoint %s: %w", e.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("endpoint %s: %w", e.Name, ErrExists)
	}
	return nil
}

// GetEndpoint implements EndpointStore.
func (s *SQLite) GetEndpoint(ctx context.Context, name string) (*endpoint.Endpoint, error) {
	e, err := scanEndpoint(s.r.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("endpoint %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get endpoint %s: %w", name, err)
	}
	return e, nil
}

// ListEndpoints implements EndpointStore.
func (s *SQLite) ListEndpoints(ctx context.Context) ([]*endpoint.Endpoint, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+endpointCols+` FROM endpoints ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	defer rows.Close()
	out := []*endpoint.Endpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func updateEndpoint(ctx context.Context, tx *sql.Tx, e *endpoint.Endpoint) error {
	spec, err := json.Marshal(e.Spec)
	if err != nil {
		return err
	}
	e.UpdatedAt = time.Now().UTC()
	res, err := tx.ExecContext(ctx, `UPDATE endpoints SET spec = ?, state = ?, reason = ?, updated_at = ? WHERE name = ?`,
		string(spec), e.State, e.Reason, e.UpdatedAt.UnixNano(), e.Name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("endpoint %s: %w", e.Name, ErrNotFound)
	}
	return nil
}

// UpdateEndpoint implements EndpointStore.
func (s *SQLite) UpdateEndpoint(ctx context.Context, e *endpoint.Endpoint) error {
	if err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return updateEndpoint(ctx, tx, e) }); err != nil {
		return fmt.Errorf("update endpoint %s: %w", e.Name, err)
	}
	return nil
}

// DeleteEndpoint implements EndpointStore. The cascade (foreign keys are
// on) takes the deployments, their events and the scale events along.
func (s *SQLite) DeleteEndpoint(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM endpoints WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete endpoint %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("endpoint %s: %w", name, ErrNotFound)
	}
	return nil
}

// --- deployments ---

const deploymentCols = `id, endpoint, variant, from_spec, to_spec, strategy, alarms, phase, step, state, outcome, reason,
	created_at, updated_at, ended_at`

func scanDeployment(row interface{ Scan(...any) error }) (*endpoint.Deployment, error) {
	var d endpoint.Deployment
	var from, to, alarms, state string
	var created, updated int64
	var ended sql.NullInt64
	if err := row.Scan(&d.ID, &d.Endpoint, &d.Variant, &from, &to, &d.Strategy, &alarms, &d.Phase, &d.Step, &state,
		&d.Outcome, &d.Reason, &created, &updated, &ended); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		s string
		v any
	}{{from, &d.From}, {to, &d.To}, {alarms, &d.Alarms}} {
		if err := json.Unmarshal([]byte(p.s), p.v); err != nil {
			return nil, fmt.Errorf("deployment %d: %w", d.ID, err)
		}
	}
	if state != "" {
		d.State = []byte(state)
	}
	d.CreatedAt, d.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	if ended.Valid {
		d.EndedAt = time.Unix(0, ended.Int64).UTC()
	}
	return &d, nil
}

func insertEvents(ctx context.Context, tx *sql.Tx, id int64, events []endpoint.Event) error {
	for _, ev := range events {
		if _, err := tx.ExecContext(ctx, `INSERT INTO deployment_events(deployment_id, at, message) VALUES (?,?,?)`,
			id, ev.At.UnixNano(), ev.Message); err != nil {
			return err
		}
	}
	return nil
}

// StartDeployment implements EndpointStore.
func (s *SQLite) StartDeployment(ctx context.Context, d *endpoint.Deployment, events []endpoint.Event) error {
	from, _ := json.Marshal(d.From)
	to, _ := json.Marshal(d.To)
	alarms, _ := json.Marshal(d.Alarms)
	now := time.Now().UTC()
	d.CreatedAt, d.UpdatedAt, d.Outcome = now, now, endpoint.Running
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM endpoints WHERE name = ?`, d.Endpoint).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("endpoint %s: %w", d.Endpoint, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if endpoint.State(state) == endpoint.Deleting {
			return fmt.Errorf("endpoint %s is being deleted: %w", d.Endpoint, ErrExists)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO deployments(endpoint, variant, from_spec, to_spec, strategy, alarms, phase,
			step, state, outcome, reason, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,'','',?,?)`,
			d.Endpoint, d.Variant, string(from), string(to), d.Strategy, string(alarms), d.Phase, d.Step, string(d.State),
			now.UnixNano(), now.UnixNano())
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE constraint failed") {
				return ErrDeploymentRunning
			}
			return err
		}
		if d.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		// Green's replicas are told apart from every other fleet of the
		// variant by the deployment's id, unique for ever.
		d.To.Revision = d.ID
		to, _ := json.Marshal(d.To)
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET to_spec = ? WHERE id = ?`, string(to), d.ID); err != nil {
			return err
		}
		if err := insertEvents(ctx, tx, d.ID, events); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE endpoints SET state = ?, reason = '', updated_at = ? WHERE name = ?`,
			endpoint.Updating, now.UnixNano(), d.Endpoint)
		return err
	})
	if err != nil {
		return fmt.Errorf("start deployment on %s: %w", d.Endpoint, err)
	}
	d.Events = append(d.Events, events...)
	return nil
}

// UpdateDeployment implements EndpointStore.
func (s *SQLite) UpdateDeployment(ctx context.Context, d *endpoint.Deployment, events []endpoint.Event, ep *endpoint.Endpoint) error {
	d.UpdatedAt = time.Now().UTC()
	var ended any
	if !d.EndedAt.IsZero() {
		ended = d.EndedAt.UnixNano()
	}
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deployments SET phase = ?, step = ?, state = ?, outcome = ?, reason = ?,
			updated_at = ?, ended_at = ? WHERE id = ?`,
			d.Phase, d.Step, string(d.State), d.Outcome, d.Reason, d.UpdatedAt.UnixNano(), ended, d.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("deployment %d: %w", d.ID, ErrNotFound)
		}
		if err := insertEvents(ctx, tx, d.ID, events); err != nil {
			return err
		}
		if ep != nil {
			return updateEndpoint(ctx, tx, ep)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update deployment %d: %w", d.ID, err)
	}
	d.Events = append(d.Events, events...)
	return nil
}

// GetDeployment implements EndpointStore.
func (s *SQLite) GetDeployment(ctx context.Context, id int64) (*endpoint.Deployment, error) {
	d, err := scanDeployment(s.r.QueryRowContext(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("deployment %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get deployment %d: %w", id, err)
	}
	if err := s.fillEvents(ctx, []*endpoint.Deployment{d}); err != nil {
		return nil, err
	}
	return d, nil
}

func (s *SQLite) queryDeployments(ctx context.Context, query string, args ...any) ([]*endpoint.Deployment, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	defer rows.Close()
	out := []*endpoint.Deployment{}
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, s.fillEvents(ctx, out)
}

func (s *SQLite) fillEvents(ctx context.Context, ds []*endpoint.Deployment) error {
	for _, d := range ds {
		rows, err := s.r.QueryContext(ctx, `SELECT at, message FROM deployment_events WHERE deployment_id = ? ORDER BY rowid`, d.ID)
		if err != nil {
			return fmt.Errorf("events of deployment %d: %w", d.ID, err)
		}
		for rows.Next() {
			var at int64
			var ev endpoint.Event
			if err := rows.Scan(&at, &ev.Message); err != nil {
				rows.Close()
				return err
			}
			ev.At = time.Unix(0, at).UTC()
			d.Events = append(d.Events, ev)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// ListDeployments implements EndpointStore.
func (s *SQLite) ListDeployments(ctx context.Context, endpointName string, limit int) ([]*endpoint.Deployment, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return s.queryDeployments(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE endpoint = ? ORDER BY id DESC LIMIT ?`,
		endpointName, limit)
}

// RunningDeployments implements EndpointStore.
func (s *SQLite) RunningDeployments(ctx context.Context) ([]*endpoint.Deployment, error) {
	return s.queryDeployments(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE outcome = '' ORDER BY id`)
}

// --- scale events ---

// AddScaleEvent implements EndpointStore.
func (s *SQLite) AddScaleEvent(ctx context.Context, ev *endpoint.ScaleEvent, ep *endpoint.Endpoint) error {
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO scale_events(endpoint, variant, from_n, to_n, reason, at) VALUES (?,?,?,?,?,?)`,
			ev.Endpoint, ev.Variant, ev.From, ev.To, ev.Reason, ev.At.UnixNano())
		if err != nil {
			return err
		}
		if ev.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if ep != nil {
			return updateEndpoint(ctx, tx, ep)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record scale event of %s/%s: %w", ev.Endpoint, ev.Variant, err)
	}
	return nil
}

// ListScaleEvents implements EndpointStore.
func (s *SQLite) ListScaleEvents(ctx context.Context, endpointName string, limit int) ([]endpoint.ScaleEvent, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, endpoint, variant, from_n, to_n, reason, at FROM scale_events
		WHERE endpoint = ? ORDER BY id DESC LIMIT ?`, endpointName, limit)
	if err != nil {
		return nil, fmt.Errorf("list scale events of %s: %w", endpointName, err)
	}
	defer rows.Close()
	out := []endpoint.ScaleEvent{}
	for rows.Next() {
		var ev endpoint.ScaleEvent
		var at int64
		if err := rows.Scan(&ev.ID, &ev.Endpoint, &ev.Variant, &ev.From, &ev.To, &ev.Reason, &at); err != nil {
			return nil, err
		}
		ev.At = time.Unix(0, at).UTC()
		out = append(out, ev)
	}
	return out, rows.Err()
}

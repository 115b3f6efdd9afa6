package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/asyncq"
)

// AsyncStore is the durable queue of asynchronous inference requests
// (migration 6). Every method is one statement or one transaction; the
// state changes a dispatcher makes are conditional on its lease, so that
// a request finishes once whatever was interrupted.
type AsyncStore interface {
	// InsertAsync queues a request (ErrExists if its id is taken,
	// ErrNotFound if its endpoint is gone).
	InsertAsync(ctx context.Context, r *asyncq.Request) error
	GetAsync(ctx context.Context, endpointName, id string) (*asyncq.Request, error)
	// ListAsync lists an endpoint's requests, newest first, in state
	// (all if ""), at most limit.
	ListAsync(ctx context.Context, endpointName string, state asyncq.State, limit int) ([]*asyncq.Request, error)
	// LeaseAsync moves up to n queued requests of an endpoint that are
	// due (next_at ≤ now), oldest first, to running under owner,
	// counting an attempt, and returns them.
	LeaseAsync(ctx context.Context, endpointName, owner string, n int, now time.Time) ([]*asyncq.Request, error)
	// FinishAsync ends a running request held by owner as succeeded or
	// failed (with errMsg), making its webhook pending; false if the row
	// is not running under owner any more (nothing changed).
	FinishAsync(ctx context.Context, id, owner string, state asyncq.State, errMsg string, now time.Time) (bool, error)
	// RetryAsync puts a running request held by owner back in the queue,
	// due at next, counting a replica failure when failed is set.
	RetryAsync(ctx context.Context, id, owner string, failed bool, errMsg string, next time.Time) (bool, error)
	// UnleaseAsync puts a running request held by owner back in the
	// queue as if it had not been leased (its attempt uncounted): for a
	// lease that was never sent.
	UnleaseAsync(ctx context.Context, id, owner string) (bool, error)
	// OrphanedAsync lists running requests not held by owner: those a
	// previous server was running when it stopped.
	OrphanedAsync(ctx context.Context, owner string) ([]*asyncq.Request, error)
	// AdoptAsync makes a running request of another owner this owner's
	// (false if it is not running under from any more).
	AdoptAsync(ctx context.Context, id, from, owner string) (bool, error)
	// AsyncBacklog counts queued and running requests by endpoint.
	AsyncBacklog(ctx context.Context) (map[string]AsyncCounts, error)
	// ExpiredAsync lists up to n requests that ended before cutoff and
	// have no webhook left to deliver, oldest first.
	ExpiredAsync(ctx context.Context, cutoff time.Time, n int) ([]*asyncq.Request, error)
	// DeleteEndedAsync deletes the requests with these ids that have
	// ended (a row in any other state is left as it is).
	DeleteEndedAsync(ctx context.Context, ids []string) error

	// ClaimWebhooks takes up to n pending notifications that are due,
	// pushing their next try to until (a lease: a delivery cut short by a
	// crash is tried again then), and returns their requests.
	ClaimWebhooks(ctx context.Context, n int, now, until time.Time) ([]*asyncq.Request, error)
	// WebhookResult records one delivery attempt: its new state, count,
	// error and, if pending still, when it is due again.
	WebhookResult(ctx context.Context, id string, state asyncq.WebhookState, attempts int, errMsg string, next time.Time) error
}

// AsyncCounts is an endpoint's queue.
type AsyncCounts struct {
	Queued  int `json:"queued"`
	Running int `json:"running"`
}

// Backlog is the requests waiting or being served.
func (c AsyncCounts) Backlog() int { return c.Queued + c.Running }

// asyncMigration is migration 6. seq orders the queue (first in, first
// out); the partial indexes keep the dispatcher's and the webhook
// worker's scans to the rows they want however long the history grows.
const asyncMigration = `CREATE TABLE async_requests (
		seq              INTEGER PRIMARY KEY AUTOINCREMENT,
		id               TEXT    NOT NULL UNIQUE,
		endpoint         TEXT    NOT NULL REFERENCES endpoints(name) ON DELETE CASCADE,
		state            TEXT    NOT NULL,
		input            TEXT    NOT NULL,
		input_bytes      INTEGER NOT NULL,
		inline           INTEGER NOT NULL,
		content_type     TEXT    NOT NULL DEFAULT '',
		accept           TEXT    NOT NULL DEFAULT '',
		output           TEXT    NOT NULL,
		failure          TEXT    NOT NULL,
		timeout_ns       INTEGER NOT NULL,
		attempts         INTEGER NOT NULL DEFAULT 0,
		failures         INTEGER NOT NULL DEFAULT 0,
		max_attempts     INTEGER NOT NULL,
		error            TEXT    NOT NULL DEFAULT '',
		owner            TEXT    NOT NULL DEFAULT '',
		webhook          TEXT    NOT NULL DEFAULT '',
		webhook_state    TEXT    NOT NULL DEFAULT '',
		webhook_attempts INTEGER NOT NULL DEFAULT 0,
		webhook_error    TEXT    NOT NULL DEFAULT '',
		webhook_next_at  INTEGER NOT NULL DEFAULT 0,
		submitted_at     INTEGER NOT NULL,
		started_at       INTEGER,
		ended_at         INTEGER,
		next_at          INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX async_queue ON async_requests(endpoint, next_at, seq) WHERE state = 'queued';
	CREATE INDEX async_running ON async_requests(owner) WHERE state = 'running';
	CREATE INDEX async_endpoint ON async_requests(endpoint, seq);
	CREATE INDEX async_webhooks ON async_requests(webhook_next_at) WHERE webhook_state = 'pending';`

const asyncCols = `id, endpoint, state, input, input_bytes, inline, content_type, accept, output, failure, timeout_ns,
	attempts, failures, max_attempts, error, owner, webhook, webhook_state, webhook_attempts, webhook_error, webhook_next_at,
	submitted_at, started_at, ended_at, next_at`

func scanAsync(row interface{ Scan(...any) error }) (*asyncq.Request, error) {
	var r asyncq.Request
	var timeout, whNext, submitted, next int64
	var started, ended sql.NullInt64
	if err := row.Scan(&r.ID, &r.Endpoint, &r.State, &r.Input, &r.InputBytes, &r.Inline, &r.ContentType, &r.Accept,
		&r.Output, &r.Failure, &timeout, &r.Attempts, &r.Failures, &r.MaxAttempts, &r.Error, &r.Owner, &r.Webhook,
		&r.WebhookState, &r.WebhookAttempts, &r.WebhookError, &whNext, &submitted, &started, &ended, &next); err != nil {
		return nil, err
	}
	r.Timeout = time.Duration(timeout)
	r.SubmittedAt = time.Unix(0, submitted).UTC()
	if whNext > 0 {
		r.WebhookNextAt = time.Unix(0, whNext).UTC()
	}
	if next > 0 {
		r.NextAt = time.Unix(0, next).UTC()
	}
	if started.Valid {
		r.StartedAt = time.Unix(0, started.Int64).UTC()
	}
	if ended.Valid {
		r.EndedAt = time.Unix(0, ended.Int64).UTC()
	}
	return &r, nil
}

func (s *SQLite) queryAsync(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]*asyncq.Request, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*asyncq.Request{}
	for rows.Next() {
		r, err := scanAsync(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// InsertAsync implements AsyncStore.
func (s *SQLite) InsertAsync(ctx context.Context, r *asyncq.Request) error {
	if r.SubmittedAt.IsZero() {
		r.SubmittedAt = time.Now().UTC()
	}
	r.State = asyncq.Queued
	if r.Webhook != "" {
		r.WebhookState = asyncq.WebhookWaiting
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO async_requests(id, endpoint, state, input, input_bytes, inline, content_type,
		accept, output, failure, timeout_ns, max_attempts, webhook, webhook_state, submitted_at)
		SELECT ?,?,?,?,?,?,?,?,?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM endpoints WHERE name = ? AND state != 'deleting')
		ON CONFLICT(id) DO NOTHING`,
		r.ID, r.Endpoint, r.State, r.Input, r.InputBytes, r.Inline, r.ContentType, r.Accept, r.Output, r.Failure,
		int64(r.Timeout), r.MaxAttempts, r.Webhook, r.WebhookState, r.SubmittedAt.UnixNano(), r.Endpoint)
	if err != nil {
		return fmt.Errorf("queue async request %s: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Ids are unique across endpoints: one taken on another endpoint
		// is as taken as one on this.
		var taken bool
		if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM async_requests WHERE id = ?)`, r.ID).Scan(&taken); err != nil {
			return fmt.Errorf("queue async request %s: %w", r.ID, err)
		}
		if taken {
			return fmt.Errorf("async request %s: %w", r.ID, ErrExists)
		}
		return fmt.Errorf("endpoint %s: %w", r.Endpoint, ErrNotFound)
	}
	return nil
}

// GetAsync implements AsyncStore.
func (s *SQLite) GetAsync(ctx context.Context, endpointName, id string) (*asyncq.Request, error) {
	r, err := scanAsync(s.r.QueryRowContext(ctx, `SELECT `+asyncCols+` FROM async_requests WHERE id = ? AND endpoint = ?`,
		id, endpointName))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("async request %s of endpoint %s: %w", id, endpointName, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get async request %s: %w", id, err)
	}
	return r, nil
}

// ListAsync implements AsyncStore.
func (s *SQLite) ListAsync(ctx context.Context, endpointName string, state asyncq.State, limit int) ([]*asyncq.Request, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := `SELECT ` + asyncCols + ` FROM async_requests WHERE endpoint = ?`
	args := []any{endpointName}
	if state != "" {
		q += ` AND state = ?`
		args = append(args, state)
	}
	out, err := s.queryAsync(ctx, s.r, q+` ORDER BY seq DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list async requests of %s: %w", endpointName, err)
	}
	return out, nil
}

// LeaseAsync implements AsyncStore.
func (s *SQLite) LeaseAsync(ctx context.Context, endpointName, owner string, n int, now time.Time) ([]*asyncq.Request, error) {
	if n <= 0 {
		return nil, nil
	}
	out, err := s.queryAsync(ctx, s.w, `UPDATE async_requests SET state = 'running', owner = ?, attempts = attempts + 1,
		started_at = ?, error = '' WHERE seq IN (SELECT seq FROM async_requests WHERE state = 'queued' AND endpoint = ?
		AND next_at <= ? ORDER BY seq LIMIT ?) RETURNING `+asyncCols,
		owner, now.UnixNano(), endpointName, now.UnixNano(), n)
	if err != nil {
		return nil, fmt.Errorf("lease async requests of %s: %w", endpointName, err)
	}
	return out, nil
}

// FinishAsync implements AsyncStore.
func (s *SQLite) FinishAsync(ctx context.Context, id, owner string, state asyncq.State, errMsg string, now time.Time) (bool, error) {
	if !state.Terminal() {
		return false, fmt.Errorf("finish async request %s: %q is not a final state", id, state)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE async_requests SET state = ?, error = ?, ended_at = ?, owner = '',
		webhook_state = CASE WHEN webhook != '' THEN 'pending' ELSE '' END, webhook_next_at = ?
		WHERE id = ? AND state = 'running' AND owner = ?`,
		state, errMsg, now.UnixNano(), now.UnixNano(), id, owner)
	if err != nil {
		return false, fmt.Errorf("finish async request %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RetryAsync implements AsyncStore.
func (s *SQLite) RetryAsync(ctx context.Context, id, owner string, failed bool, errMsg string, next time.Time) (bool, error) {
	inc := 0
	if failed {
		inc = 1
	}
	res, err := s.w.ExecContext(ctx, `UPDATE async_requests SET state = 'queued', owner = '', failures = failures + ?,
		error = ?, next_at = ? WHERE id = ? AND state = 'running' AND owner = ?`,
		inc, errMsg, next.UnixNano(), id, owner)
	if err != nil {
		return false, fmt.Errorf("requeue async request %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ExpiredAsync implements AsyncStore. It scans the ended rows (no index
// serves ended_at): a sweep runs every few minutes, not per request.
// expiredAsyncQuery's state term is the async_ended index's condition
// word for word: SQLite uses a partial index only for a query that
// implies it.
const expiredAsyncQuery = `SELECT ` + asyncCols + ` FROM async_requests
	WHERE state IN ('succeeded', 'failed') AND ended_at < ? AND webhook_state NOT IN ('waiting', 'pending')
	ORDER BY ended_at LIMIT ?`

func (s *SQLite) ExpiredAsync(ctx context.Context, cutoff time.Time, n int) ([]*asyncq.Request, error) {
	out, err := s.queryAsync(ctx, s.r, expiredAsyncQuery, cutoff.UnixNano(), n)
	if err != nil {
		return nil, fmt.Errorf("list expired async requests: %w", err)
	}
	return out, nil
}

// DeleteEndedAsync implements AsyncStore.
func (s *SQLite) DeleteEndedAsync(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := `DELETE FROM async_requests WHERE state IN ('succeeded', 'failed') AND id IN (?` + strings.Repeat(",?", len(ids)-1) + `)`
	if _, err := s.w.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("delete ended async requests: %w", err)
	}
	return nil
}

// UnleaseAsync implements AsyncStore.
func (s *SQLite) UnleaseAsync(ctx context.Context, id, owner string) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE async_requests SET state = 'queued', owner = '', attempts = MAX(attempts - 1, 0)
		WHERE id = ? AND state = 'running' AND owner = ?`, id, owner)
	if err != nil {
		return false, fmt.Errorf("give back async request %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// OrphanedAsync implements AsyncStore.
func (s *SQLite) OrphanedAsync(ctx context.Context, owner string) ([]*asyncq.Request, error) {
	out, err := s.queryAsync(ctx, s.r, `SELECT `+asyncCols+` FROM async_requests WHERE state = 'running' AND owner != ?
		ORDER BY seq`, owner)
	if err != nil {
		return nil, fmt.Errorf("list orphaned async requests: %w", err)
	}
	return out, nil
}

// AdoptAsync implements AsyncStore.
func (s *SQLite) AdoptAsync(ctx context.Context, id, from, owner string) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE async_requests SET owner = ? WHERE id = ? AND state = 'running' AND owner = ?`,
		owner, id, from)
	if err != nil {
		return false, fmt.Errorf("adopt async request %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// AsyncBacklog implements AsyncStore.
func (s *SQLite) AsyncBacklog(ctx context.Context) (map[string]AsyncCounts, error) {
	// Each half reads its partial index only: the one query with
	// "state IN (...)" scanned every request ever made (a fifth of the
	// server's CPU at 200 requests/s, run on every dispatch pass).
	rows, err := s.r.QueryContext(ctx, `SELECT endpoint, state, COUNT(*) FROM async_requests INDEXED BY async_queue
		WHERE state = 'queued' GROUP BY endpoint
		UNION ALL SELECT endpoint, state, COUNT(*) FROM async_requests INDEXED BY async_running
		WHERE state = 'running' GROUP BY endpoint`)
	if err != nil {
		return nil, fmt.Errorf("count async backlog: %w", err)
	}
	defer rows.Close()
	out := map[string]AsyncCounts{}
	for rows.Next() {
		var ep, state string
		var n int
		if err := rows.Scan(&ep, &state, &n); err != nil {
			return nil, err
		}
		c := out[ep]
		if state == string(asyncq.Queued) {
			c.Queued = n
		} else {
			c.Running = n
		}
		out[ep] = c
	}
	return out, rows.Err()
}

// ClaimWebhooks implements AsyncStore.
func (s *SQLite) ClaimWebhooks(ctx context.Context, n int, now, until time.Time) ([]*asyncq.Request, error) {
	if n <= 0 {
		return nil, nil
	}
	out, err := s.queryAsync(ctx, s.w, `UPDATE async_requests SET webhook_next_at = ? WHERE seq IN (SELECT seq FROM async_requests
		WHERE webhook_state = 'pending' AND webhook_next_at <= ? ORDER BY webhook_next_at LIMIT ?) RETURNING `+asyncCols,
		until.UnixNano(), now.UnixNano(), n)
	if err != nil {
		return nil, fmt.Errorf("claim webhooks: %w", err)
	}
	return out, nil
}

// WebhookResult implements AsyncStore.
func (s *SQLite) WebhookResult(ctx context.Context, id string, state asyncq.WebhookState, attempts int, errMsg string, next time.Time) error {
	if len(errMsg) > 1024 {
		errMsg = strings.ToValidUTF8(errMsg[:1024], "") + "…"
	}
	_, err := s.w.ExecContext(ctx, `UPDATE async_requests SET webhook_state = ?, webhook_attempts = ?, webhook_error = ?,
		webhook_next_at = ? WHERE id = ?`, state, attempts, errMsg, next.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("record webhook of %s: %w", id, err)
	}
	return nil
}

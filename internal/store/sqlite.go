package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/job"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SQLite is the Store on an SQLite file. Writes go through one connection
// (SQLite has one writer; queueing in Go beats SQLite's sleep-and-retry
// busy handler), reads through a pool that WAL lets run beside the writer.
type SQLite struct {
	w *sql.DB
	r *sql.DB
	// Statements of the hot write path, prepared once.
	insJob, upJob, upAttempt *sql.Stmt
	// And of the hot read path (every long poll, every job get): parsing
	// them each time cost more than running them.
	getJobByID, getAttempts *sql.Stmt
}

var _ Store = (*SQLite)(nil)

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*SQLite, error) {
	// The database holds job specs with their environment values: only its
	// owner reads it, whatever the umask or the data dir's mode (SQLite
	// gives the -wal and -shm files the database's mode).
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	for _, side := range []string{path + "-wal", path + "-shm"} {
		// Left by an older version (with its mode) if it was killed.
		if err := os.Chmod(side, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
	}
	dsn := func(extra string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(1)"} {
			q.Add("_pragma", p)
		}
		return "file:" + path + "?" + q.Encode() + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn("&_pragma=query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	r.SetMaxOpenConns(max(4, runtime.NumCPU()))
	s := &SQLite{w: w, r: r}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.insJob, err = w.PrepareContext(ctx, insertJobSQL); err == nil {
		if s.upJob, err = w.PrepareContext(ctx, updateJobSQL); err == nil {
			s.upAttempt, err = w.PrepareContext(ctx, upsertAttemptSQL)
		}
	}
	if err == nil {
		if s.getJobByID, err = r.PrepareContext(ctx, `SELECT `+jobCols+` FROM `+jobFrom+` WHERE j.id = ?`); err == nil {
			s.getAttempts, err = r.PrepareContext(ctx, attemptsSQL)
		}
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("prepare statements: %w", err)
	}
	return s, nil
}

// Close closes both pools.
func (s *SQLite) Close() error {
	for _, st := range []*sql.Stmt{s.insJob, s.upJob, s.upAttempt, s.getJobByID, s.getAttempts} {
		if st != nil {
			st.Close()
		}
	}
	return errors.Join(s.r.Close(), s.w.Close())
}

func (s *SQLite) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this hpcml (%d): upgrade hpcml", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d: %w", v, err)
		}
	}
	return nil
}

// tx runs fn in a write transaction, with the context fn's statements
// are to use. The wait for the one writer connection ends with the
// caller's context; a write, once it has the connection, runs to its end
// whatever becomes of that context (it is bounded by the busy timeout):
// with a context that can end, the driver would start a goroutine per
// statement to watch it (about a tenth of the store's CPU on the jobs'
// hot path).
func (s *SQLite) tx(ctx context.Context, fn func(context.Context, *sql.Tx) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = context.WithoutCancel(ctx)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// --- queues ---

const queueCols = `name, priority, max_running, price_cpu_hour, price_gb_hour, backend, created_at, partition, account, qos`

func scanQueue(row interface{ Scan(...any) error }) (*job.Queue, error) {
	var q job.Queue
	var created int64
	if err := row.Scan(&q.Name, &q.Priority, &q.MaxRunning, &q.PriceCPUHour, &q.PriceGBHour, &q.Backend, &created, &q.Partition, &q.Account, &q.QOS); err != nil {
		return nil, err
	}
	q.CreatedAt = time.Unix(0, created).UTC()
	return &q, nil
}

// CreateQueue inserts a queue; ErrExists if the name is taken.
func (s *SQLite) CreateQueue(ctx context.Context, q *job.Queue) error {
	if q.CreatedAt.IsZero() {
		q.CreatedAt = time.Now().UTC()
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO queues(`+queueCols+`) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO NOTHING`,
		q.Name, q.Priority, q.MaxRunning, q.PriceCPUHour, q.PriceGBHour, q.Backend, q.CreatedAt.UnixNano(), q.Partition, q.Account, q.QOS)
	if err != nil {
		return fmt.Errorf("create queue %s: %w", q.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("queue %s: %w", q.Name, ErrExists)
	}
	return nil
}

// UpdateQueue writes a queue's mutable settings.
func (s *SQLite) UpdateQueue(ctx context.Context, q *job.Queue) error {
	res, err := s.w.ExecContext(ctx, `UPDATE queues SET priority = ?, max_running = ?, price_cpu_hour = ?, price_gb_hour = ?, backend = ?, partition = ?, account = ?, qos = ? WHERE name = ?`,
		q.Priority, q.MaxRunning, q.PriceCPUHour, q.PriceGBHour, q.Backend, q.Partition, q.Account, q.QOS, q.Name)
	if err != nil {
		return fmt.Errorf("update queue %s: %w", q.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("queue %s: %w", q.Name, ErrNotFound)
	}
	return nil
}

// GetQueue reads one queue.
func (s *SQLite) GetQueue(ctx context.Context, name string) (*job.Queue, error) {
	q, err := scanQueue(s.r.QueryRowContext(ctx, `SELECT `+queueCols+` FROM queues WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("queue %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get queue %s: %w", name, err)
	}
	return q, nil
}

// ListQueues lists queues by descending priority, then name.
func (s *SQLite) ListQueues(ctx context.Context) ([]*job.Queue, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+queueCols+` FROM queues ORDER BY priority DESC, name`)
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	defer rows.Close()
	var out []*job.Queue
	for rows.Next() {
		q, err := scanQueue(rows)
		if err != nil {
			return nil, fmt.Errorf("list queues: %w", err)
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// QueueCounts counts runnable units (plain jobs and array tasks) by queue and state.
func (s *SQLite) QueueCounts(ctx context.Context) (map[string]map[job.State]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT queue, state, COUNT(*) FROM jobs WHERE array_size = 0 GROUP BY queue, state`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	out := map[string]map[job.State]int{}
	for rows.Next() {
		var q string
		var st job.State
		var n int
		if err := rows.Scan(&q, &st, &n); err != nil {
			return nil, err
		}
		if out[q] == nil {
			out[q] = map[job.State]int{}
		}
		out[q][st] = n
	}
	return out, rows.Err()
}

// --- jobs ---

// jobCols and jobFrom read jobs; an array task stores no spec of its own
// (spec = ”), it shares its parent's.
const jobCols = `j.id, j.name, j.queue, j.state, j.reason, j.parent_id, j.array_index, j.array_size, j.attempt,
	j.exit_code, j.signal, j.submitted_at, j.started_at, j.ended_at, j.cpu_seconds, j.max_rss_bytes, j.cost,
	j.cancel_requested, j.interruptions, CASE WHEN j.spec = '' THEN p.spec ELSE j.spec END`

const jobFrom = `jobs j LEFT JOIN jobs p ON j.spec = '' AND p.id = j.parent_id`

func scanJob(row interface{ Scan(...any) error }) (*job.Job, error) {
	var j job.Job
	var idx, exit, started, ended sql.NullInt64
	var submitted int64
	var spec string
	err := row.Scan(&j.ID, &j.Name, &j.Queue, &j.State, &j.Reason, &j.ParentID, &idx, &j.ArraySize, &j.Attempt,
		&exit, &j.Signal, &submitted, &started, &ended, &j.CPUSeconds, &j.MaxRSSBytes, &j.Cost, &j.CancelRequested, &j.Interruptions, &spec)
	if err != nil {
		return nil, err
	}
	if idx.Valid {
		v := int(idx.Int64)
		j.ArrayIndex = &v
	}
	if exit.Valid {
		v := int(exit.Int64)
		j.ExitCode = &v
	}
	j.SubmittedAt = time.Unix(0, submitted).UTC()
	j.StartedAt = timePtr(started)
	j.EndedAt = timePtr(ended)
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return nil, fmt.Errorf("job %d: stored spec: %w", j.ID, err)
	}
	return &j, nil
}

func timePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.Unix(0, n.Int64).UTC()
	return &t
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func nullInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// InsertJob stores j (and its array tasks) in one transaction; ids are
// assigned in order, parent first, and the tasks get ParentID set.
func (s *SQLite) InsertJob(ctx context.Context, j *job.Job, tasks []*job.Job) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		stmt := tx.StmtContext(ctx, s.insJob)
		insert := func(x *job.Job) error {
			var spec []byte // an array task shares its parent's (see jobFrom)
			if x.ParentID == 0 {
				var err error
				if spec, err = json.Marshal(x.Spec); err != nil {
					return err
				}
			}
			res, err := stmt.ExecContext(ctx, x.Name, x.Queue, x.State, x.Reason, x.ParentID, nullInt(x.ArrayIndex),
				x.ArraySize, x.Attempt, x.SubmittedAt.UnixNano(), string(spec))
			if err != nil {
				return fmt.Errorf("insert job: %w", err)
			}
			x.ID, err = res.LastInsertId()
			return err
		}
		if err := insert(j); err != nil {
			return err
		}
		for _, t := range tasks {
			t.ParentID = j.ID
			if err := insert(t); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetJob reads one job with its attempts and, for an array, task counts.
func (s *SQLite) GetJob(ctx context.Context, id int64) (*job.Job, error) {
	return s.getJobRow(ctx, fmt.Sprint(id), s.getJobByID.QueryRowContext(ctx, id))
}

// GetArrayTask reads task index of array job parent.
func (s *SQLite) GetArrayTask(ctx context.Context, parent int64, index int) (*job.Job, error) {
	return s.getJob(ctx, fmt.Sprintf("%d_%d", parent, index), `SELECT `+jobCols+` FROM `+jobFrom+` WHERE j.parent_id = ? AND j.array_index = ?`, parent, index)
}

func (s *SQLite) getJob(ctx context.Context, what, query string, args ...any) (*job.Job, error) {
	return s.getJobRow(ctx, what, s.r.QueryRowContext(ctx, query, args...))
}

func (s *SQLite) getJobRow(ctx context.Context, what string, row *sql.Row) (*job.Job, error) {
	j, err := scanJob(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("job %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	if j.Attempts, err = s.Attempts(ctx, j.ID); err != nil {
		return nil, err
	}
	if j.IsArrayParent() {
		if err := s.fillArrayCounts(ctx, []*job.Job{j}); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// ListJobs lists jobs matching f, newest first.
func (s *SQLite) ListJobs(ctx context.Context, f JobFilter) ([]*job.Job, error) {
	var where []string
	var args []any
	where = append(where, "j.parent_id = ?")
	args = append(args, f.Parent)
	if f.State != "" {
		where = append(where, "j.state = ?")
		args = append(args, f.State)
	}
	if f.Queue != "" {
		where = append(where, "j.queue = ?")
		args = append(args, f.Queue)
	}
	if f.Before > 0 {
		where = append(where, "j.id < ?")
		args = append(args, f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	order := "j.id DESC"
	if f.Parent != 0 {
		order = "j.array_index"
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+jobCols+` FROM `+jobFrom+` WHERE `+strings.Join(where, " AND ")+
		` ORDER BY `+order+` LIMIT `+fmt.Sprint(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out, parents []*job.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
		if j.IsArrayParent() {
			parents = append(parents, j)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	if err := s.fillArrayCounts(ctx, parents); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *SQLite) fillArrayCounts(ctx context.Context, parents []*job.Job) error {
	for _, p := range parents {
		rows, err := s.r.QueryContext(ctx, `SELECT state, COUNT(*) FROM jobs WHERE parent_id = ? GROUP BY state`, p.ID)
		if err != nil {
			return fmt.Errorf("count array tasks of %d: %w", p.ID, err)
		}
		p.ArrayCounts = map[job.State]int{}
		for rows.Next() {
			var st job.State
			var n int
			if err := rows.Scan(&st, &n); err != nil {
				rows.Close()
				return err
			}
			p.ArrayCounts[st] = n
		}
		rows.Close()
	}
	return nil
}

// JobStates returns the state of each existing id.
func (s *SQLite) JobStates(ctx context.Context, ids []int64) (map[int64]job.State, error) {
	out := make(map[int64]job.State, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ph := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, state FROM jobs WHERE id IN (`+ph+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("job states: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var st job.State
		if err := rows.Scan(&id, &st); err != nil {
			return nil, err
		}
		out[id] = st
	}
	return out, rows.Err()
}

// ActiveJobs returns every non-terminal job, oldest first.
func (s *SQLite) ActiveJobs(ctx context.Context) ([]*job.Job, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+jobCols+` FROM `+jobFrom+` WHERE j.state NOT IN ('SUCCEEDED','FAILED','CANCELLED','TIMEOUT') ORDER BY j.id`)
	if err != nil {
		return nil, fmt.Errorf("active jobs: %w", err)
	}
	defer rows.Close()
	var out []*job.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("active jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Attempts lists a job's attempts in order.
func (s *SQLite) Attempts(ctx context.Context, id int64) ([]job.Attempt, error) {
	rows, err := s.getAttempts.QueryContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("attempts of job %d: %w", id, err)
	}
	defer rows.Close()
	var out []job.Attempt
	for rows.Next() {
		var a job.Attempt
		var started, ended, exit sql.NullInt64
		if err := rows.Scan(&a.Number, &a.State, &a.Reason, &started, &ended, &exit, &a.Signal, &a.CPUSeconds,
			&a.MaxRSSBytes, &a.StdoutURL, &a.StderrURL, &a.BackendID, &a.Interrupted); err != nil {
			return nil, err
		}
		a.StartedAt, a.EndedAt = timePtr(started), timePtr(ended)
		if exit.Valid {
			v := int(exit.Int64)
			a.ExitCode = &v
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

const attemptsSQL = `SELECT attempt, state, reason, started_at, ended_at, exit_code, signal,
	cpu_seconds, max_rss_bytes, stdout_url, stderr_url, backend_id, interrupted FROM attempts WHERE job_id = ? ORDER BY attempt`

const insertJobSQL = `INSERT INTO jobs(name, queue, state, reason, parent_id, array_index, array_size,
	attempt, submitted_at, spec) VALUES (?,?,?,?,?,?,?,?,?,?)`

const updateJobSQL = `UPDATE jobs SET state=?, reason=?, attempt=?, exit_code=?, signal=?,
	started_at=?, ended_at=?, cpu_seconds=?, max_rss_bytes=?, cost=?, cancel_requested=?, interruptions=? WHERE id=?`

const upsertAttemptSQL = `INSERT INTO attempts(job_id, attempt, state, reason, started_at, ended_at,
	exit_code, signal, cpu_seconds, max_rss_bytes, stdout_url, stderr_url, backend_id, interrupted) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
	ON CONFLICT(job_id, attempt) DO UPDATE SET state=excluded.state, reason=excluded.reason,
	started_at=excluded.started_at, ended_at=excluded.ended_at, exit_code=excluded.exit_code, signal=excluded.signal,
	cpu_seconds=excluded.cpu_seconds, max_rss_bytes=excluded.max_rss_bytes, stdout_url=excluded.stdout_url,
	stderr_url=excluded.stderr_url, backend_id=excluded.backend_id, interrupted=excluded.interrupted`

// Apply writes changes in one transaction.
func (s *SQLite) Apply(ctx context.Context, changes []Change) error {
	if len(changes) == 0 {
		return nil
	}
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		upJob, upAttempt := tx.StmtContext(ctx, s.upJob), tx.StmtContext(ctx, s.upAttempt)
		for _, c := range changes {
			j := c.Job
			if _, err := upJob.ExecContext(ctx, j.State, j.Reason, j.Attempt, nullInt(j.ExitCode), j.Signal,
				nullTime(j.StartedAt), nullTime(j.EndedAt), j.CPUSeconds, j.MaxRSSBytes, j.Cost, j.CancelRequested, j.Interruptions, j.ID); err != nil {
				return fmt.Errorf("update job %d: %w", j.ID, err)
			}
			if a := c.Attempt; a != nil {
				if _, err := upAttempt.ExecContext(ctx, j.ID, a.Number, a.State, a.Reason, nullTime(a.StartedAt), nullTime(a.EndedAt),
					nullInt(a.ExitCode), a.Signal, a.CPUSeconds, a.MaxRSSBytes, a.StdoutURL, a.StderrURL, a.BackendID, a.Interrupted); err != nil {
					return fmt.Errorf("update attempt %d of job %d: %w", a.Number, j.ID, err)
				}
			}
		}
		return nil
	})
}

package store

// migrations are applied in order, each once, each in its own
// transaction; the version applied last is recorded in schema_migrations.
// Never edit a released migration: add a new one.
var migrations = []string{
	// 1: queues, jobs and attempts.
	`CREATE TABLE queues (
		name           TEXT PRIMARY KEY,
		priority       INTEGER NOT NULL DEFAULT 0,
		max_running    INTEGER NOT NULL DEFAULT 0,
		price_cpu_hour REAL    NOT NULL DEFAULT 0,
		price_gb_hour  REAL    NOT NULL DEFAULT 0,
		backend        TEXT    NOT NULL DEFAULT 'local',
		created_at     INTEGER NOT NULL
	);
	CREATE TABLE jobs (
		id               INTEGER PRIMARY KEY AUTOINCREMENT,
		name             TEXT    NOT NULL,
		queue            TEXT    NOT NULL REFERENCES queues(name),
		state            TEXT    NOT NULL,
		reason           TEXT    NOT NULL DEFAULT '',
		parent_id        INTEGER NOT NULL DEFAULT 0,
		array_index      INTEGER,
		array_size       INTEGER NOT NULL DEFAULT 0,
		attempt          INTEGER NOT NULL DEFAULT 0,
		exit_code        INTEGER,
		signal           TEXT    NOT NULL DEFAULT '',
		submitted_at     INTEGER NOT NULL,
		started_at       INTEGER,
		ended_at         INTEGER,
		cpu_seconds      REAL    NOT NULL DEFAULT 0,
		max_rss_bytes    INTEGER NOT NULL DEFAULT 0,
		cost             REAL    NOT NULL DEFAULT 0,
		cancel_requested INTEGER NOT NULL DEFAULT 0,
		spec             TEXT    NOT NULL
	);
	CREATE INDEX jobs_parent ON jobs(parent_id, array_index);
	CREATE INDEX jobs_state ON jobs(state);
	CREATE INDEX jobs_queue ON jobs(queue, state);
	CREATE TABLE attempts (
		job_id        INTEGER NOT NULL REFERENCES jobs(id),
		attempt       INTEGER NOT NULL,
		state         TEXT    NOT NULL,
		reason        TEXT    NOT NULL DEFAULT '',
		started_at    INTEGER,
		ended_at      INTEGER,
		exit_code     INTEGER,
		signal        TEXT    NOT NULL DEFAULT '',
		cpu_seconds   REAL    NOT NULL DEFAULT 0,
		max_rss_bytes INTEGER NOT NULL DEFAULT 0,
		stdout_url    TEXT    NOT NULL DEFAULT '',
		stderr_url    TEXT    NOT NULL DEFAULT '',
		PRIMARY KEY (job_id, attempt)
	);`,
	// 2: Slurm: where a queue's jobs go, which Slurm job ran an attempt,
	// and interruptions (node failure, preemption) in a job's history.
	`ALTER TABLE queues ADD COLUMN partition TEXT NOT NULL DEFAULT '';
	ALTER TABLE queues ADD COLUMN account TEXT NOT NULL DEFAULT '';
	ALTER TABLE queues ADD COLUMN qos TEXT NOT NULL DEFAULT '';
	ALTER TABLE attempts ADD COLUMN backend_id TEXT NOT NULL DEFAULT '';
	ALTER TABLE attempts ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE jobs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;`,
	// 3: versioned datasets; a version's manifest lives in object storage.
	`CREATE TABLE datasets (
		name       TEXT PRIMARY KEY,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE dataset_versions (
		dataset      TEXT    NOT NULL REFERENCES datasets(name),
		version      INTEGER NOT NULL,
		source       TEXT    NOT NULL,
		files        INTEGER NOT NULL,
		bytes        INTEGER NOT NULL,
		digest       TEXT    NOT NULL,
		manifest_key TEXT    NOT NULL,
		created_at   INTEGER NOT NULL,
		PRIMARY KEY (dataset, version)
	);`,
	// 4: the model registry; a version's artefact and record live in
	// object storage under models/<name>/<version>/, the row makes the
	// version visible. Aliases point at existing versions only.
	`CREATE TABLE models (
		name       TEXT PRIMARY KEY,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE model_versions (
		model      TEXT    NOT NULL REFERENCES models(name),
		version    INTEGER NOT NULL,
		sha256     TEXT    NOT NULL,
		size       INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		record     TEXT    NOT NULL,
		PRIMARY KEY (model, version)
	);
	CREATE TABLE model_aliases (
		model      TEXT    NOT NULL,
		alias      TEXT    NOT NULL,
		version    INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (model, alias),
		FOREIGN KEY (model, version) REFERENCES model_versions(model, version)
	);`,
	// 5: real-time endpoints, their deployments (with events) and scale
	// events (the SQL is in endpoints.go, beside the code that uses it).
	endpointsMigration,
	// 6: the durable queue of asynchronous inference requests (async.go).
	asyncMigration,
	// 7: the async retention sweep's scan of ended requests (ExpiredAsync)
	// reads only those, oldest first, instead of the whole history.
	`CREATE INDEX async_ended ON async_requests(ended_at) WHERE state IN ('succeeded', 'failed');`,
}

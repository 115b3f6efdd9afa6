package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// attempt is one submitted attempt being watched. Owned by b.mu.
type attempt struct {
	key
	dir        string
	attemptKey string // in the Slurm comment
	slurmID    string // "123" or "123_4"; "" while a recovered attempt is looked for

	size      int64 // of the journal when last read
	claimed   bool
	started   bool
	startedAt time.Time
	reason    string // last waiting reason reported

	cancelRequested bool // hpcml asked; scancel sent once cancelSent
	cancelSent      bool
	// held is a result the wrapper recorded as cancelled although hpcml
	// did not ask: Slurm's state says why (time limit, preemption, scancel).
	held *job.Result
	// missing counts squeue polls that did not list the job.
	missing int
}

// track starts watching a submitted attempt.
func (b *Backend) track(id int64, n int, dir, attemptKey, slurmID string) {
	b.mu.Lock()
	k := key{id, n}
	if a := b.inflight[k]; a != nil {
		a.slurmID = slurmID
	} else {
		b.inflight[k] = &attempt{key: k, dir: dir, attemptKey: attemptKey, slurmID: slurmID, size: -1}
	}
	b.mu.Unlock()
	b.rep.Queued(id, n, "slurm:"+slurmID, "submitted to slurm as job "+slurmID)
}

// Recover re-attaches to an attempt submitted by an earlier server. Its
// Slurm job is found from the id recorded beside it or, failing that, by
// its comment; the watcher settles the rest.
func (b *Backend) Recover(ctx context.Context, j *job.Job) error {
	dir := b.AttemptDir(j.ID, j.Attempt)
	slurmID := ""
	if data, err := os.ReadFile(filepath.Join(dir, slurmIDFile)); err == nil {
		slurmID = strings.TrimSpace(string(data))
	}
	attemptKey := fmt.Sprintf("%d.%d", j.ID, j.Attempt)
	if j.ArrayIndex != nil {
		attemptKey = "" // the array's key: found through the slurm_id file, or by search
	}
	b.mu.Lock()
	b.inflight[key{j.ID, j.Attempt}] = &attempt{key: key{j.ID, j.Attempt}, dir: dir, attemptKey: attemptKey,
		slurmID: slurmID, size: -1, cancelRequested: j.CancelRequested}
	b.mu.Unlock()
	return nil
}

// Cancel asks Slurm to stop an attempt (scancel: SIGTERM to the job,
// which the wrapper passes on to the command's process group, SIGKILL
// after Slurm's KillWait). It returns at once; the watcher sends it.
func (b *Backend) Cancel(ctx context.Context, jobID int64, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.inflight[key{jobID, n}]
	if a == nil {
		return nil // ended already
	}
	a.cancelRequested = true
	go b.sendCancels(context.WithoutCancel(ctx))
	return nil
}

// sendCancels sends scancel for every attempt asked to stop and not yet
// told; a controller that is down is tried again at the next squeue poll.
func (b *Backend) sendCancels(ctx context.Context) {
	b.mu.Lock()
	var ids []string
	var todo []*attempt
	for _, a := range b.inflight {
		if a.cancelRequested && !a.cancelSent && a.slurmID != "" {
			ids = append(ids, a.slurmID)
			todo = append(todo, a)
			a.cancelSent = true // claimed by this call
		}
	}
	b.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	_, err := b.cmd.run(ctx, nil, "scancel", ids...)
	var ce *commandError
	if err != nil && !errors.As(err, &ce) { // a refused id has ended: nothing to cancel
		b.log.Warn("scancel; will retry", "jobs", ids, "err", err)
		b.mu.Lock()
		for _, a := range todo {
			a.cancelSent = false
		}
		b.mu.Unlock()
	}
}

// Run watches submitted attempts until ctx ends.
func (b *Backend) Run(ctx context.Context) {
	journals := time.NewTicker(b.cfg.Poll)
	defer journals.Stop()
	queue := time.NewTicker(b.cfg.QueuePoll)
	defer queue.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-journals.C:
			b.readJournals()
		case <-queue.C:
			b.pollSlurm(ctx)
			b.sendCancels(ctx)
		}
	}
}

// readJournals reads the journals that grew and reports what they say.
func (b *Backend) readJournals() {
	b.mu.Lock()
	watched := make([]*attempt, 0, len(b.inflight))
	for _, a := range b.inflight {
		watched = append(watched, a)
	}
	b.mu.Unlock()
	for _, a := range watched {
		info, err := os.Stat(filepath.Join(a.dir, task.StatusFile))
		if err != nil || info.Size() == a.size {
			continue
		}
		b.readJournal(a, info.Size())
	}
}

// readJournal applies one attempt's journal. Only the watcher goroutine
// calls it, so an attempt's fields it touches are its own.
func (b *Backend) readJournal(a *attempt, size int64) {
	st, err := task.ReadStatus(a.dir)
	if err != nil {
		return
	}
	a.size = size
	if st.Owner != "" {
		a.claimed = true
	}
	if st.Started != nil && !a.started {
		a.started, a.startedAt = true, st.Started.At
		b.rep.Started(a.id, a.attempt, st.Started.At)
	}
	if st.Done == nil || st.Done.Result == nil {
		return
	}
	r := *st.Done.Result
	b.mu.Lock()
	asked := a.cancelRequested
	b.mu.Unlock()
	if !asked && stoppedFromOutside(&r) {
		a.held = &r // Slurm's state says why; see settle
		return
	}
	b.finish(a, r)
}

// stoppedFromOutside: the wrapper was told to stop, or the command was
// killed with SIGTERM or SIGKILL, without hpcml asking — Slurm stopping
// the job (time limit, node failure, preemption, an admin's scancel), or
// the command's own doing. Slurm's final state tells which. A shell
// whose child was killed so exits 128+signal (143, 137) rather than by
// the signal, depending on which of them Slurm's signal reached first:
// the same case. Holding such an end costs nothing when the command did
// exit so itself: for a COMPLETED or FAILED job the journal's word stands.
func stoppedFromOutside(r *job.Result) bool {
	if r.ExitCode != nil && (*r.ExitCode == 128+int(syscall.SIGTERM) || *r.ExitCode == 128+int(syscall.SIGKILL)) {
		return true
	}
	return r.Cancelled || r.Signal == "SIGTERM" || r.Signal == "SIGKILL"
}

func (b *Backend) finish(a *attempt, r job.Result) {
	b.mu.Lock()
	_, ok := b.inflight[a.key]
	delete(b.inflight, a.key)
	b.mu.Unlock()
	if ok {
		b.rep.Finished(a.id, a.attempt, r)
	}
}

// squeueRow is one line of squeue.
type squeueRow struct {
	id, state, reason, comment string
}

// pollSlurm asks squeue about every watched attempt and settles those
// Slurm has finished with but whose wrapper could not say how.
func (b *Backend) pollSlurm(ctx context.Context) {
	watched := b.watched()
	if len(watched) == 0 {
		return
	}
	jobIDs := map[string]bool{}
	lost := false
	for _, id := range watched {
		if id == "" {
			lost = true
			continue
		}
		base, _, _ := strings.Cut(id, "_")
		jobIDs[base] = true
	}
	if lost {
		b.findLost(ctx, watched)
	}
	rows, err := b.squeue(ctx, jobIDs)
	if err != nil {
		b.log.Warn("squeue", "err", err)
		return
	}
	for a, id := range watched {
		if id == "" {
			continue
		}
		row, ok := rows[id]
		if !ok {
			a.missing++
			if a.missing >= 3 {
				b.settle(ctx, a, id, nil)
			}
			continue
		}
		a.missing = 0
		if !ended(row.state) {
			if normState(row.state) == "PENDING" || !a.started {
				reason := waitingReason(id, row.state, row.reason)
				if reason != a.reason {
					a.reason = reason
					b.rep.Queued(a.id, a.attempt, "slurm:"+id, reason)
				}
			}
			continue
		}
		b.settle(ctx, a, id, &row)
	}
}

// watched snapshots the watched attempts with their Slurm ids (which
// launches set from other goroutines).
func (b *Backend) watched() map[*attempt]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[*attempt]string, len(b.inflight))
	for _, a := range b.inflight {
		m[a] = a.slurmID
	}
	return m
}

// settle ends an attempt Slurm is done with (row, or nil when Slurm no
// longer knows the job). The journal, read once more, is the better
// witness; Slurm's own record fills in when the wrapper could not write.
func (b *Backend) settle(ctx context.Context, a *attempt, slurmID string, row *squeueRow) {
	if info, err := os.Stat(filepath.Join(a.dir, task.StatusFile)); err == nil {
		b.readJournal(a, info.Size())
	}
	b.mu.Lock()
	_, watched := b.inflight[a.key]
	asked := a.cancelRequested
	b.mu.Unlock()
	if !watched {
		return
	}
	end := slurmEnd{}
	if row != nil {
		end.State, end.Reason = row.state, row.reason
	}
	if info, err := b.showJob(ctx, slurmID); err == nil {
		end = info
	} else if row == nil {
		if errors.Is(err, backend.ErrUnavailable) {
			return // ask again later
		}
		end.State = "NODE_FAIL"
		end.Reason = "slurm no longer knows the job"
	}
	if a.held != nil {
		b.finish(a, heldResult(*a.held, slurmID, end, asked))
		return
	}
	r := end.result(slurmID, a.claimed, a.startedAt)
	if asked && r.Cancelled {
		r.Error = ""
	}
	b.finish(a, r)
}

// heldResult is the end of an attempt whose wrapper recorded a stop from
// outside (see stoppedFromOutside), told by Slurm's final state.
func heldResult(r job.Result, slurmID string, end slurmEnd, asked bool) job.Result {
	switch normState(end.State) {
	case "TIMEOUT", "DEADLINE":
		r.Cancelled, r.TimedOut = false, true
	case "PREEMPTED", "NODE_FAIL", "BOOT_FAIL":
		r.Cancelled, r.NodeLost, r.Interrupted = false, true, true
		r.Error = fmt.Sprintf("slurm job %s: %s", slurmID, strings.ToLower(strings.ReplaceAll(normState(end.State), "_", " ")))
	case "CANCELLED":
		if !asked {
			r.Cancelled = true
			r.Error = fmt.Sprintf("slurm job %s was cancelled outside hpcml", slurmID)
		}
	}
	// Otherwise (COMPLETED, FAILED) the command stopped itself: the
	// journal's word stands.
	return r
}

// squeue lists the rows of the given Slurm jobs (array tasks one by one).
func (b *Backend) squeue(ctx context.Context, jobIDs map[string]bool) (map[string]squeueRow, error) {
	rows := map[string]squeueRow{}
	if len(jobIDs) == 0 {
		return rows, nil
	}
	ids := make([]string, 0, len(jobIDs))
	for id := range jobIDs {
		ids = append(ids, id)
	}
	out, err := b.cmd.run(ctx, nil, "squeue", "--noheader", "--array", "--states=all",
		"--jobs="+strings.Join(ids, ","), "--format=%i|%T|%r|%k")
	var ce *commandError
	if errors.As(err, &ce) && strings.Contains(ce.msg, "Invalid job id") {
		return rows, nil // none of them is known any more
	}
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.SplitN(line, "|", 4)
		if len(f) < 4 {
			continue
		}
		rows[f[0]] = squeueRow{id: f[0], state: f[1], reason: f[2], comment: f[3]}
	}
	return rows, nil
}

// submittedJobs maps the attempt keys of this server's Slurm jobs to
// their Slurm (array) job ids.
func (b *Backend) submittedJobs(ctx context.Context) (map[string]string, error) {
	out, err := b.cmd.run(ctx, nil, "squeue", "--noheader", "--me", "--states=all", "--format=%F|%k")
	if err != nil {
		return nil, err
	}
	prefix := comment(b.instance, "")
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		id, c, ok := strings.Cut(line, "|")
		if ok && strings.HasPrefix(c, prefix) {
			m[strings.TrimPrefix(c, prefix)] = id
		}
	}
	return m, nil
}

// findLost looks for the Slurm jobs of recovered attempts that had no
// recorded id (the server died between sbatch and writing it down).
func (b *Backend) findLost(ctx context.Context, watched map[*attempt]string) {
	byKey, err := b.submittedJobs(ctx)
	if err != nil {
		b.log.Warn("look for submitted slurm jobs", "err", err)
		return
	}
	for a, known := range watched {
		if known != "" {
			continue
		}
		if id, ok := byKey[a.attemptKey]; ok && a.attemptKey != "" {
			b.mu.Lock()
			a.slurmID = id
			b.mu.Unlock()
			writeFileAtomic(filepath.Join(a.dir, slurmIDFile), []byte(id+"\n"))
			continue
		}
		if id, ok := b.arrayTaskID(a, byKey); ok {
			b.mu.Lock()
			a.slurmID = id
			b.mu.Unlock()
			continue
		}
		// Slurm has no job for it. If the wrapper claimed it, the journal
		// tells the rest (or nothing ever will: the node was lost).
		if info, err := os.Stat(filepath.Join(a.dir, task.StatusFile)); err == nil {
			b.readJournal(a, info.Size())
			if a.claimed {
				b.finish(a, job.Result{NodeLost: true, EndedAt: time.Now().UTC(),
					Error: "slurm no longer knows the attempt's job and its wrapper recorded no result"})
			}
			continue
		}
		b.finish(a, job.Result{NeverStarted: true, Error: "launch interrupted"})
	}
}

// arrayTaskID finds a recovered array task's Slurm id from the array
// submission that lists its attempt dir.
func (b *Backend) arrayTaskID(a *attempt, byKey map[string]string) (string, bool) {
	base := filepath.Base(a.dir)
	for subKey, id := range byKey {
		m, err := readTaskMap(filepath.Join(b.cfg.Dir, arraysDir, subKey))
		if err != nil {
			continue
		}
		for idx, d := range m {
			if d == base {
				return id + "_" + idx, true
			}
		}
	}
	return "", false
}

// showJob reads how Slurm says a job ended.
func (b *Backend) showJob(ctx context.Context, slurmID string) (slurmEnd, error) {
	out, err := b.cmd.run(ctx, nil, "scontrol", "show", "job", "-o", slurmID)
	if err != nil {
		return slurmEnd{}, err
	}
	f := fields(firstLine(string(out)))
	if f["JobState"] == "" {
		return slurmEnd{}, fmt.Errorf("scontrol show job %s: no JobState", slurmID)
	}
	return slurmEnd{State: f["JobState"], Reason: f["Reason"], ExitCode: f["ExitCode"]}, nil
}

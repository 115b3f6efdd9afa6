package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/profile"
	"github.com/hpcml/hpcml/internal/table"
	"github.com/hpcml/hpcml/internal/task"
)

// maxSubmittedPartitions bounds the jobs one --submit makes.
const maxSubmittedPartitions = 1000

// submitProfile runs a profile as jobs: one per partition, each writing
// its state to the server's storage (analysis/<id>/states/), and one that
// merges them, after all succeeded, into the stored report
// (reports/profile/<id>/). It waits for the merge and returns the report.
func submitProfile(ctx context.Context, cmd *cobra.Command, o *rootOptions, url string, opts analysis.ProfileOptions, f *profileFlags) (*analysis.ProfileReport, error) {
	c, cfg, err := o.client()
	if err != nil {
		return nil, err
	}
	if f.cpus <= 0 {
		return nil, fmt.Errorf("--cpus must be positive")
	}
	if u, err := filepath.Abs(url); err == nil && !strings.Contains(url, "://") {
		url = u // the jobs run in their own dirs
	}
	parts, err := analysis.Plan(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	if len(parts) > maxSubmittedPartitions {
		return nil, fmt.Errorf("%d partitions: at most %d jobs per profile (give --partitions)", len(parts), maxSubmittedPartitions)
	}
	now := time.Now()
	id := newReportID(now)
	states := "analysis/" + id + "/states/"
	var deps []job.Dependency
	var ids []string
	for _, p := range parts {
		pj, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		argv := []string{task.SelfProgram, "data", "__profile-part", "--partition", string(pj), "--state", "state.bin"}
		if opts.Profile.ExactDuplicates {
			argv = append(argv, "--exact-duplicates")
		}
		spec := &job.Spec{
			Name: fmt.Sprintf("profile-%s-%d", id, p.Index), Queue: f.queue, Command: argv,
			Resources: job.Resources{CPUs: f.cpus},
			Outputs:   []job.Output{{Path: "state.bin", URL: fmt.Sprintf("%s%06d.state", states, p.Index)}},
			Tags:      map[string]string{"hpcml.profile": id},
		}
		j, err := c.SubmitJob(ctx, spec)
		if err != nil {
			return nil, explain(fmt.Errorf("submit partition %d: %w", p.Index, err), cfg)
		}
		deps = append(deps, job.Dependency{Type: job.AfterOK, JobID: j.ID})
		ids = append(ids, strconv.FormatInt(j.ID, 10))
	}
	dir := analysis.ReportDir(analysis.KindProfile, id)
	merge := &job.Spec{
		Name: "profile-" + id, Queue: f.queue,
		Command: []string{task.SelfProgram, "data", "__profile-merge", "--states", "states", "--id", id,
			"--source", blob.Redact(url), "--created", now.UTC().Format(time.RFC3339Nano), "--jobs", strings.Join(ids, ",")},
		Inputs: []job.Input{{URL: states, Path: "states"}},
		// The summary after the report: a listed report is complete.
		Outputs: []job.Output{
			{Path: analysis.ReportFile, URL: dir + analysis.ReportFile},
			{Path: analysis.SummaryFile, URL: dir + analysis.SummaryFile},
		},
		DependsOn: deps,
		Tags:      map[string]string{"hpcml.profile": id},
	}
	mj, err := c.SubmitJob(ctx, merge)
	if err != nil {
		return nil, explain(fmt.Errorf("submit merge: %w", err), cfg)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Profile %s: %d partition jobs (%s), merged by job %d.\n", id, len(parts), strings.Join(ids, " "), mj.ID)
	final, err := waitWithStatus(ctx, c, strconv.FormatInt(mj.ID, 10), cmd.ErrOrStderr(), true, o.now)
	if err != nil {
		return nil, explain(err, cfg)
	}
	if final.State != job.Succeeded {
		return nil, profileFailed(ctx, c, id, ids, final)
	}
	rep, err := c.GetProfileReport(ctx, id)
	return rep, explain(err, cfg)
}

// profileFailed says why a submitted profile failed: the partition job
// that failed (not just that the merge could not run), with the error it
// printed; partition jobs still running are cancelled, their work moot.
func profileFailed(ctx context.Context, c *client.Client, id string, ids []string, merge *job.Job) error {
	var failed *job.Job
	for _, pid := range ids {
		pj, err := c.GetJob(ctx, pid)
		switch {
		case err != nil:
		case pj.State.Terminal() && pj.State != job.Succeeded:
			if failed == nil {
				failed = pj
			}
		case !pj.State.Terminal():
			c.CancelJob(ctx, pid)
		}
	}
	if failed != nil {
		fid := failed.DisplayID()
		return fmt.Errorf("profile %s: partition job %s %s: %s (hpcml job logs --stderr %s)", id, fid, failed.State, lastError(ctx, c, fid, failed.Reason), fid)
	}
	return fmt.Errorf("profile %s: merge job %d %s: %s (hpcml job logs --stderr %d)", id, merge.ID, merge.State, lastError(ctx, c, merge.DisplayID(), merge.Reason), merge.ID)
}

// lastError is the last "error:" line of a failed job's stderr (what
// the hpcml command it ran said), else the job's reason.
func lastError(ctx context.Context, c *client.Client, id, reason string) string {
	rc, err := c.Logs(ctx, id, client.LogOptions{Stream: "stderr"})
	if err != nil {
		return reason
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return reason
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if msg, ok := strings.CutPrefix(lines[i], "error: "); ok {
			return msg
		}
	}
	return reason
}

// newProfilePartCmd is the partition job's command: one partition's
// state to a file.
func newProfilePartCmd() *cobra.Command {
	var partition, state string
	var exact bool
	cmd := &cobra.Command{
		Use:    "__profile-part",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p table.Partition
			if err := json.Unmarshal([]byte(partition), &p); err != nil {
				return fmt.Errorf("--partition: %w", err)
			}
			st, err := analysis.ProfilePartition(cmd.Context(), p, analysis.ProfileOptions{Profile: profile.Options{ExactDuplicates: exact}})
			if err != nil {
				return err
			}
			data, err := st.MarshalBinary()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "partition %d: %d rows, state %d bytes\n", p.Index, st.Rows(), len(data))
			return writeFileAtomic(state, data)
		},
	}
	cmd.Flags().StringVar(&partition, "partition", "", "the partition, as JSON")
	cmd.Flags().StringVar(&state, "state", "state.bin", "where to write its state")
	cmd.Flags().BoolVar(&exact, "exact-duplicates", false, "count duplicate rows exactly")
	return cmd
}

// newProfileMergeCmd is the merge job's command: the states in a dir,
// in name (partition) order, to a report and its summary.
func newProfileMergeCmd() *cobra.Command {
	var states, id, source, created, jobs string
	cmd := &cobra.Command{
		Use:    "__profile-merge",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			entries, err := os.ReadDir(states)
			if err != nil {
				return err
			}
			var names []string
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".state") {
					names = append(names, e.Name())
				}
			}
			sort.Strings(names)
			if len(names) == 0 {
				return errors.New("no partition states to merge")
			}
			var parts []*profile.State
			for _, n := range names {
				data, err := os.ReadFile(filepath.Join(states, n))
				if err != nil {
					return err
				}
				st, err := profile.DecodeState(data)
				if err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
				parts = append(parts, st)
			}
			merged, err := analysis.Merge(parts)
			if err != nil {
				return err
			}
			at, err := time.Parse(time.RFC3339Nano, created)
			if err != nil {
				return fmt.Errorf("--created: %w", err)
			}
			rep := &analysis.ProfileReport{ID: id, Kind: analysis.KindProfile, Source: source, CreatedAt: at,
				Partitions: len(parts), Profile: merged.Report()}
			for _, j := range strings.Split(jobs, ",") {
				if n, err := strconv.ParseInt(j, 10, 64); err == nil {
					rep.Jobs = append(rep.Jobs, n)
				}
			}
			rep.Seconds = time.Since(at).Seconds()
			data, err := json.Marshal(rep)
			if err != nil {
				return err
			}
			sum, err := json.Marshal(rep.Summary())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "merged %d partition states (%d rows) in %.2fs\n", len(parts), merged.Rows(), time.Since(start).Seconds())
			if err := writeFileAtomic(analysis.ReportFile, data); err != nil {
				return err
			}
			return writeFileAtomic(analysis.SummaryFile, sum)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&states, "states", "states", "the dir of partition states")
	fl.StringVar(&id, "id", "", "the report id")
	fl.StringVar(&source, "source", "", "what was profiled")
	fl.StringVar(&created, "created", "", "when the profile began (RFC 3339)")
	fl.StringVar(&jobs, "jobs", "", "the partition jobs' ids, comma-separated")
	return cmd
}

package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/table"
	"github.com/hpcml/hpcml/internal/task"
	"github.com/hpcml/hpcml/internal/transform"
)

// reportPrefix starts the commit job's stdout line holding the report.
const reportPrefix = "hpcml-transform-report "

// submitTransform runs a plan as jobs. Each pass's units (partitions, or
// shuffle buckets) are jobs that depend (afterok) on the job that
// gathered the pass before: a statistics pass's gather merges the
// units' states into the statistics its step uses
// (analysis/<id>/stats/), a shuffle's marks its end, the last pass's
// commits the output and writes the report (analysis/<id>/report.json).
// Unit results, states and shuffle buckets go to the server's storage
// under analysis/<id>/; the output's files are written by the jobs to
// the spec's URL, staged, and moved into place by the commit.
//
// The CLI waits for the gathers in order. When one fails it cancels the
// jobs still running or waiting, lets the failed pass's units end, and
// runs a cleanup job that removes what was staged; then it names the
// first unit that failed and what it said. A cleanup job after the
// commit (afterany) is the safety net when no client is watching.
func submitTransform(ctx context.Context, cmd *cobra.Command, o *rootOptions, p *transform.Plan, f *transformFlags) (*transform.Report, error) {
	c, cfg, err := o.client()
	if err != nil {
		return nil, err
	}
	if f.cpus <= 0 {
		return nil, fmt.Errorf("--cpus must be positive")
	}
	plan, err := p.JobJSON()
	if err != nil {
		return nil, err
	}
	passes := p.Passes()
	for _, ps := range passes {
		if ps.Units > maxSubmittedPartitions {
			return nil, fmt.Errorf("pass %d has %d units: at most %d jobs per pass (set input.partitions or drop_duplicates.buckets)", ps.Index+1, ps.Units, maxSubmittedPartitions)
		}
	}
	base := "analysis/" + p.ID + "/"
	tags := map[string]string{"hpcml.transform": p.ID}
	var jobs []int64
	submit := func(s *job.Spec) (int64, error) {
		s.Queue, s.Tags = f.queue, tags
		if s.Resources.CPUs == 0 {
			s.Resources.CPUs = f.cpus
		}
		j, err := c.SubmitJob(ctx, s)
		if err != nil {
			return 0, explain(fmt.Errorf("submit %s: %w", s.Name, err), cfg)
		}
		jobs = append(jobs, j.ID)
		return j.ID, nil
	}
	base1 := []string{task.SelfProgram, "data", "transform"}
	var after, commit int64
	statsSeen := false
	var counted []int
	var gathers []int64
	units := make([][]int64, len(passes))
	for _, ps := range passes {
		shuffled, bucketed := p.Bucketed(ps)
		var deps []job.Dependency
		for u := range ps.Units {
			argv := append(append([]string(nil), base1...), "__unit", "--plan", string(plan),
				"--pass", strconv.Itoa(ps.Index), "--unit", strconv.Itoa(u), "--result", "result.json")
			s := &job.Spec{Name: fmt.Sprintf("transform-%s-%d-%d", p.ID, ps.Index+1, u),
				Outputs: []job.Output{{Path: "result.json", URL: fmt.Sprintf("%spass-%d/%s", base, ps.Index, transform.ResultFile(u))}}}
			if bucketed {
				s.Inputs = append(s.Inputs, job.Input{URL: fmt.Sprintf("%sshuffle-%d/%s/", base, shuffled, transform.BucketName(u)), Path: "bucket"})
				argv = append(argv, "--bucket", "bucket")
			} else {
				pj, err := json.Marshal(p.Partitions[u])
				if err != nil {
					return nil, err
				}
				argv = append(argv, "--partition", string(pj))
			}
			if statsSeen {
				s.Inputs = append(s.Inputs, job.Input{URL: base + "stats/", Path: "stats"})
				argv = append(argv, "--stats", "stats")
			}
			if ps.Kind == transform.PassShuffle {
				s.Outputs = append(s.Outputs, job.Output{Path: "shuffle", URL: fmt.Sprintf("%sshuffle-%d/", base, ps.Step)})
				argv = append(argv, "--shuffle", "shuffle")
			}
			s.Command = argv
			if after != 0 {
				s.DependsOn = []job.Dependency{{Type: job.AfterOK, JobID: after}}
			}
			id, err := submit(s)
			if err != nil {
				return nil, err
			}
			deps = append(deps, job.Dependency{Type: job.AfterOK, JobID: id})
			units[ps.Index] = append(units[ps.Index], id)
		}
		g := &job.Spec{DependsOn: deps, Resources: job.Resources{CPUs: 0.1}}
		argv := append(append([]string(nil), base1...), "__gather", "--plan", string(plan), "--pass", strconv.Itoa(ps.Index))
		switch ps.Kind {
		case transform.PassStats:
			g.Name = fmt.Sprintf("transform-%s-%d-stats", p.ID, ps.Index+1)
			out := "stats/" + transform.StatsFile(ps.Step)
			g.Inputs = []job.Input{{URL: fmt.Sprintf("%spass-%d/", base, ps.Index), Path: "results"}}
			g.Outputs = []job.Output{{Path: out, URL: base + out}}
			argv = append(argv, "--results", "results", "--stats-out", out)
			statsSeen = true
		case transform.PassShuffle:
			g.Name = fmt.Sprintf("transform-%s-%d-shuffled", p.ID, ps.Index+1)
			counted = append(counted, ps.Index)
		case transform.PassWrite:
			counted = append(counted, ps.Index)
			g.Name = "transform-" + p.ID
			argv = append(append([]string(nil), base1...), "__commit", "--plan", string(plan), "--results", "results",
				"--created", time.Now().UTC().Format(time.RFC3339Nano))
			for _, k := range counted {
				g.Inputs = append(g.Inputs, job.Input{URL: fmt.Sprintf("%spass-%d/", base, k), Path: fmt.Sprintf("results/pass-%d", k)})
			}
			if statsSeen {
				g.Inputs = append(g.Inputs, job.Input{URL: base + "stats/", Path: "stats"})
				argv = append(argv, "--stats", "stats")
			}
			g.Outputs = []job.Output{{Path: "report.json", URL: base + "report.json"}}
		}
		g.Command = argv
		if after, err = submit(g); err != nil {
			return nil, err
		}
		gathers = append(gathers, after)
		if ps.Kind == transform.PassWrite {
			commit = after
		}
	}
	cleanupSpec := func() *job.Spec {
		return &job.Spec{Name: fmt.Sprintf("transform-%s-cleanup", p.ID), Resources: job.Resources{CPUs: 0.1},
			Command: append(append([]string(nil), base1...), "__cleanup", "--plan", string(plan))}
	}
	// A safety net for a failure while no client watches.
	cs := cleanupSpec()
	cs.DependsOn = []job.Dependency{{Type: job.AfterAny, JobID: commit}}
	if _, err := submit(cs); err != nil {
		return nil, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Transform %s: %d jobs in %d passes, committed by job %d.\n", p.ID, len(jobs)-1, len(passes), commit)
	// The passes' gathers in order: each one's units depend on the one
	// before, so the first that fails is the pass that failed.
	for k, g := range gathers {
		final, err := waitWithStatus(ctx, c, strconv.FormatInt(g, 10), cmd.ErrOrStderr(), true, o.now)
		if err != nil {
			return nil, explain(err, cfg)
		}
		if final.State == job.Succeeded {
			continue
		}
		// Stop what still runs or waits, let the pass's units end (they
		// may be writing to the staging area), then remove what was
		// staged, with a job of its own.
		var cancelled []string
		for _, id := range jobs {
			sid := strconv.FormatInt(id, 10)
			if j, err := c.GetJob(ctx, sid); err == nil && !j.State.Terminal() {
				c.CancelJob(ctx, sid)
				cancelled = append(cancelled, sid)
			}
		}
		for _, id := range units[k] {
			c.WatchJob(ctx, strconv.FormatInt(id, 10), quietPoll, nil)
		}
		if id, err := submit(cleanupSpec()); err == nil {
			c.WatchJob(ctx, strconv.FormatInt(id, 10), quietPoll, nil)
		}
		// Every job cancelled above has ended before this returns, the
		// safety-net cleanup too (the commit's cancel may have started it
		// before its own cancel came): no transform job is left running.
		for _, sid := range cancelled {
			c.WatchJob(ctx, sid, quietPoll, nil)
		}
		for _, id := range units[k] { // the first unit that failed is the cause
			sid := strconv.FormatInt(id, 10)
			if j, err := c.GetJob(ctx, sid); err == nil && j.State == job.Failed {
				return nil, fmt.Errorf("transform %s: job %s (%s) %s: %s (hpcml job logs --stderr %s)", p.ID, sid, j.Spec.Name, j.State, lastError(ctx, c, sid, j.Reason), sid)
			}
		}
		return nil, fmt.Errorf("transform %s: job %d (%s) %s: %s (hpcml job logs --stderr %d)", p.ID, g, final.Spec.Name, final.State, lastError(ctx, c, strconv.FormatInt(g, 10), final.Reason), g)
	}
	rep, err := commitReport(ctx, c, commit)
	if err != nil {
		return nil, err
	}
	rep.Jobs = jobs[:len(jobs)-1] // not the cleanup
	return rep, nil
}

// commitReport reads the report from the commit job's stdout.
func commitReport(ctx context.Context, c *client.Client, id int64) (*transform.Report, error) {
	rc, err := c.Logs(ctx, strconv.FormatInt(id, 10), client.LogOptions{Stream: "stdout"})
	if err != nil {
		return nil, fmt.Errorf("read the commit job's report: %w", err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), reportPrefix); ok {
			var rep transform.Report
			if err := json.Unmarshal([]byte(rest), &rep); err != nil {
				return nil, fmt.Errorf("the commit job's report: %w", err)
			}
			return &rep, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("commit job %d printed no report", id)
}

func loadPlanFlag(s string) (*transform.Plan, error) {
	if s == "" {
		return nil, errors.New("--plan is required")
	}
	return transform.Load([]byte(s))
}

// newTransformUnitCmd is a unit job's command: one partition or bucket
// of one pass.
func newTransformUnitCmd() *cobra.Command {
	var plan, partition, stats, bucket, shuffle, result string
	var pass, unit int
	cmd := &cobra.Command{
		Use:    "__unit",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPlanFlag(plan)
			if err != nil {
				return err
			}
			ps, err := p.PassAt(pass)
			if err != nil {
				return err
			}
			st, err := transform.LoadStats(stats)
			if err != nil {
				return err
			}
			u := transform.Unit{Pass: ps, Index: unit, Stats: st, BucketDir: bucket, ShuffleDir: shuffle}
			if partition != "" {
				u.Partition = new(table.Partition)
				if err := json.Unmarshal([]byte(partition), u.Partition); err != nil {
					return fmt.Errorf("--partition: %w", err)
				}
			}
			start := time.Now()
			res, err := p.RunUnit(cmd.Context(), u)
			if err != nil {
				return err
			}
			data, err := json.Marshal(res)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pass %d (%s), unit %d: %d rows in %.2fs\n", ps.Index+1, ps.Kind, unit, res.Input, time.Since(start).Seconds())
			return writeFileAtomic(result, data)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&plan, "plan", "", "the plan, as JSON")
	fl.IntVar(&pass, "pass", 0, "the pass (0-based)")
	fl.IntVar(&unit, "unit", 0, "the unit (partition or bucket)")
	fl.StringVar(&partition, "partition", "", "the partition, as JSON (the first segment's units)")
	fl.StringVar(&stats, "stats", "", "the directory of the statistics of earlier passes")
	fl.StringVar(&bucket, "bucket", "", "the directory of the bucket's shuffle files")
	fl.StringVar(&shuffle, "shuffle", "", "where a shuffle pass writes its bucket files")
	fl.StringVar(&result, "result", "result.json", "where the unit's result goes")
	return cmd
}

// newTransformGatherCmd ends a pass: a statistics pass's states merged.
func newTransformGatherCmd() *cobra.Command {
	var plan, results, statsOut string
	var pass int
	cmd := &cobra.Command{
		Use:    "__gather",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPlanFlag(plan)
			if err != nil {
				return err
			}
			ps, err := p.PassAt(pass)
			if err != nil {
				return err
			}
			if ps.Kind != transform.PassStats {
				fmt.Fprintf(cmd.OutOrStdout(), "pass %d (%s) done\n", ps.Index+1, ps.Kind)
				return nil
			}
			res, err := transform.LoadResults(results)
			if err != nil {
				return err
			}
			if len(res) != ps.Units {
				return fmt.Errorf("%d unit results of pass %d, want %d", len(res), ps.Index+1, ps.Units)
			}
			st, err := p.MergeStats(ps, res)
			if err != nil {
				return err
			}
			data, err := json.Marshal(st)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pass %d: statistics of step %d from %d units: %s\n", ps.Index+1, ps.Step, len(res), data)
			if err := os.MkdirAll(filepath.Dir(statsOut), 0o755); err != nil {
				return err
			}
			return writeFileAtomic(statsOut, data)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&plan, "plan", "", "the plan, as JSON")
	fl.IntVar(&pass, "pass", 0, "the pass (0-based)")
	fl.StringVar(&results, "results", "results", "the directory of the units' results")
	fl.StringVar(&statsOut, "stats-out", "", "where the merged statistics go")
	return cmd
}

// newTransformCommitCmd is the last job: the output moved into place,
// the report written (and printed for the client).
func newTransformCommitCmd() *cobra.Command {
	var plan, results, stats, created string
	cmd := &cobra.Command{
		Use:    "__commit",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPlanFlag(plan)
			if err != nil {
				return err
			}
			st, err := transform.LoadStats(stats)
			if err != nil {
				return err
			}
			var all [][]*transform.UnitResult
			for _, ps := range p.Passes() {
				if ps.Kind == transform.PassStats {
					continue
				}
				res, err := transform.LoadResults(filepath.Join(results, fmt.Sprintf("pass-%d", ps.Index)))
				if err != nil {
					return err
				}
				if len(res) != ps.Units {
					return fmt.Errorf("%d unit results of pass %d, want %d", len(res), ps.Index+1, ps.Units)
				}
				all = append(all, res)
			}
			if err := p.Commit(cmd.Context()); err != nil {
				return fmt.Errorf("commit the output: %w", err)
			}
			rep := p.NewReport(st, all)
			if at, err := time.Parse(time.RFC3339Nano, created); err == nil {
				rep.Seconds = time.Since(at).Seconds()
			}
			data, err := json.Marshal(rep)
			if err != nil {
				return err
			}
			if err := writeFileAtomic("report.json", data); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s%s\n", reportPrefix, data)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&plan, "plan", "", "the plan, as JSON")
	fl.StringVar(&results, "results", "results", "the directory of the passes' unit results (pass-N/)")
	fl.StringVar(&stats, "stats", "", "the directory of the statistics")
	fl.StringVar(&created, "created", "", "when the transform began (RFC 3339)")
	return cmd
}

// newTransformCleanupCmd removes what a failed transform staged.
func newTransformCleanupCmd() *cobra.Command {
	var plan string
	cmd := &cobra.Command{
		Use:    "__cleanup",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPlanFlag(plan)
			if err != nil {
				return err
			}
			return p.Abort(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&plan, "plan", "", "the plan, as JSON")
	return cmd
}

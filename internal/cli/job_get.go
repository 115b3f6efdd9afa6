package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

func newJobGetCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "get ID",
		Aliases: []string{"show"},
		Short:   "Show a job (42) or an array task (41_3) with its attempts",
		Args:    cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			j, err := c.GetJob(ctx, args[0])
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, j)
			}
			return printJob(cmd.OutOrStdout(), o.now(), j)
		}),
	}
}

// printJob writes every field of a job a person may want, skipping the
// empty ones, then its attempts.
func printJob(w io.Writer, now time.Time, j *job.Job) error {
	tw := newTable(w)
	kv := func(k, v string) {
		switch {
		case v == "":
		case k == "": // a further line of a list field
			fmt.Fprintf(tw, "\t%s\n", v)
		default:
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	s := &j.Spec
	kv("ID", j.DisplayID())
	if j.ParentID != 0 {
		kv("Job ID", fmt.Sprint(j.ID))
		kv("Array job", fmt.Sprint(j.ParentID))
	}
	kv("Name", j.Name)
	kv("Queue", j.Queue)
	kv("State", string(j.State))
	kv("Reason", j.Reason)
	kv("Progress", progressText(now, j.Progress))
	if j.CancelRequested && !j.State.Terminal() {
		kv("Cancel", "requested")
	}
	if j.IsArrayParent() {
		kv("Array", fmt.Sprintf("%s (%d tasks)", s.Array, j.ArraySize))
		kv("Tasks", countsText(j.ArrayCounts, false))
	} else {
		kv("Attempt", attemptText(j))
		if j.ExitCode != nil || j.Signal != "" {
			kv("Exit", exitText(j.ExitCode, j.Signal))
		}
		if j.Interruptions > 0 {
			kv("Interruptions", fmt.Sprintf("%d (node failure or preemption)", j.Interruptions))
		}
		if n := len(j.Attempts); n > 0 && j.Attempts[n-1].BackendID != "" {
			kv("Backend ID", j.Attempts[n-1].BackendID)
		}
	}
	kv("Submitted", timeText(now, &j.SubmittedAt))
	kv("Started", timeText(now, j.StartedAt))
	kv("Ended", timeText(now, j.EndedAt))
	if j.StartedAt != nil {
		kv("Elapsed", elapsed(now, j.StartedAt, j.EndedAt))
	}
	if j.CPUSeconds > 0 {
		kv("CPU time", clock(time.Duration(j.CPUSeconds*float64(time.Second))))
	}
	if j.MaxRSSBytes > 0 {
		kv("Max RSS", bytesText(j.MaxRSSBytes))
	}
	if j.Cost > 0 {
		kv("Cost", strconv.FormatFloat(j.Cost, 'g', 4, 64)) // small costs must not read 0.0000
	}

	cmdline := quoteArgs(s.Command)
	if s.Shell {
		cmdline = strings.Join(s.Command, " ") + "  (with /bin/sh -c)"
	}
	kv("Command", cmdline)
	kv("Workdir", s.WorkDir)
	kv("Resources", resourcesText(s.Resources))
	kv("Ranks", ranksText(s)) // "Tasks" is an array's task counts
	if s.TimeLimit > 0 {
		kv("Time limit", s.TimeLimit.String())
	}
	kv("Retry", retryText(s.Retry))
	kv("Depends on", depsText(s.DependsOn))
	for i, k := range sortedKeys(s.Env) {
		kv(label(i, "Env"), k+"="+s.Env[k])
	}
	for i, in := range s.Inputs {
		kv(label(i, "Inputs"), in.URL+" -> "+in.Path)
	}
	for i, out := range s.Outputs {
		kv(label(i, "Outputs"), out.Path+" -> "+out.URL)
	}
	for i, k := range sortedKeys(s.Tags) {
		kv(label(i, "Tags"), k+"="+s.Tags[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(j.Attempts) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nAttempts:")
	tw = newTable(w)
	fmt.Fprintln(tw, "ATTEMPT\tSTATE\tSTARTED\tELAPSED\tEXIT\tCPU\tMAX RSS\tREASON")
	for _, a := range j.Attempts {
		started := "-"
		if a.StartedAt != nil {
			started = a.StartedAt.Local().Format(time.DateTime)
		}
		rss := "-"
		if a.MaxRSSBytes > 0 {
			rss = bytesText(a.MaxRSSBytes)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Number, a.State, started,
			elapsed(now, a.StartedAt, a.EndedAt), exitText(a.ExitCode, a.Signal),
			clock(time.Duration(a.CPUSeconds*float64(time.Second))), rss, dash(truncate(a.Reason, 60)))
	}
	return tw.Flush()
}

// progressStale: a report older than this says when it was written.
const progressStale = 30 * time.Second

// progressText is a running job's report of its progress on one line:
// "45% · 1.2 GiB of 2.6 GiB · 3 of 10 files · 120.0 MiB/s · ETA 12s ·
// copying" ("" without a report).
func progressText(now time.Time, p *job.Progress) string {
	if p == nil {
		return ""
	}
	var parts []string
	if f, ok := p.Fraction(); ok {
		parts = append(parts, fmt.Sprintf("%d%%", int(math.Floor(f*100))))
	}
	parts = append(parts, p.Amounts(bytesText, func(d time.Duration) string { return d.String() })...)
	if p.Message != "" {
		parts = append(parts, p.Message)
	}
	if !p.UpdatedAt.IsZero() && now.Sub(p.UpdatedAt) > progressStale {
		parts = append(parts, "reported "+age(now, p.UpdatedAt)+" ago")
	}
	return strings.Join(parts, " · ")
}

// label names only the first of a list's lines, so the list reads as one field.
func label(i int, name string) string {
	if i == 0 {
		return name
	}
	return ""
}

func timeText(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), age(now, *t))
}

func resourcesText(r job.Resources) string {
	parts := []string{"cpus=" + cpuText(r.CPUs)}
	if r.MemoryMB > 0 {
		parts = append(parts, "memory="+memText(r.MemoryMB))
	}
	if r.GPUs > 0 {
		parts = append(parts, fmt.Sprintf("gpus=%d", r.GPUs))
	}
	return strings.Join(parts, " ")
}

// ranksText describes a job of several tasks, or an MPI job ("" for a
// plain job of one task): its layout, and in total what it holds, since
// --cpus is per task.
func ranksText(s *job.Spec) string {
	if s.Tasks() == 1 && s.Type == "" {
		return ""
	}
	t := fmt.Sprintf("%d (%d nodes × %d per node)", s.Tasks(), max(s.Nodes, 1), max(s.TasksPerNode, 1))
	if s.Type != "" {
		t += ", " + s.Type
	}
	return t + "; in total " + resourcesText(s.Allocation())
}

func retryText(p job.RetryPolicy) string {
	if p.Attempts <= 1 {
		return ""
	}
	parts := []string{fmt.Sprintf("attempts=%d", p.Attempts)}
	if len(p.OnExitCodes) > 0 {
		codes := make([]string, len(p.OnExitCodes))
		for i, c := range p.OnExitCodes {
			codes[i] = fmt.Sprint(c)
		}
		parts = append(parts, "on exit codes "+strings.Join(codes, ","))
	}
	if len(p.OnSignals) > 0 {
		parts = append(parts, "on signals "+strings.Join(p.OnSignals, ","))
	}
	if p.OnNodeLoss {
		parts = append(parts, "on node loss")
	}
	return strings.Join(parts, ", ")
}

// depsText writes dependencies back in the --dependency syntax.
func depsText(deps []job.Dependency) string {
	parts := make([]string, len(deps))
	for i, d := range deps {
		parts[i] = fmt.Sprintf("%s:%d", d.Type, d.JobID)
	}
	return strings.Join(parts, ",")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

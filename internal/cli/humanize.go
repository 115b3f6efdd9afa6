package cli

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// age is a compact "how long ago": 45s, 12m, 3h, 5d.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// elapsed is how long a job has run (so far, if it still runs).
func elapsed(now time.Time, started, ended *time.Time) string {
	if started == nil {
		return "-"
	}
	end := now
	if ended != nil {
		end = *ended
	}
	return clock(end.Sub(*started))
}

// clock writes a duration as H:MM:SS (or M:SS), as squeue's TIME does.
func clock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// exitText is a job's or attempt's end: the signal that killed it, the
// exit code, or "-" while it has none.
func exitText(code *int, signal string) string {
	switch {
	case signal != "":
		return signal
	case code != nil:
		return strconv.Itoa(*code)
	}
	return "-"
}

// attemptText is "2/3": this attempt of the allowed ones.
func attemptText(j *job.Job) string {
	if j.Attempt == 0 {
		return "-"
	}
	if j.Spec.Retry.Attempts > 1 {
		return fmt.Sprintf("%d/%d", j.Attempt, j.Spec.Retry.Attempts)
	}
	return strconv.Itoa(j.Attempt)
}

// truncate cuts s to n runes, marking the cut.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ") // reasons may hold newlines
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimRight(string(r[:n-1]), " ") + "…"
}

// dash stands in for an empty table cell, so columns stay aligned for awk.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// bytesText writes a byte count in binary units.
func bytesText(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	v, exp := float64(b), 0
	for v >= unit && exp < 5 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[exp-1])
}

// memText writes a size given in MB (MiB, as Slurm counts them).
func memText(mb int64) string {
	if mb == 0 {
		return "0"
	}
	return bytesText(mb << 20)
}

// cpuText writes a CPU count without trailing zeros: 2, 0.5, 1.25.
func cpuText(c float64) string {
	return strconv.FormatFloat(math.Round(c*1000)/1000, 'f', -1, 64)
}

// countsText writes counts by state in lifecycle order: "3 RUNNING, 7 SUCCEEDED".
func countsText(counts map[job.State]int, withZeros bool) string {
	var parts []string
	for _, s := range job.States {
		if n := counts[s]; n > 0 || withZeros {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	// States the CLI does not know yet (a newer server) still show.
	var extra []string
	for s, n := range counts {
		if !s.Valid() {
			extra = append(extra, fmt.Sprintf("%d %s", n, s))
		}
	}
	sort.Strings(extra)
	return strings.Join(append(parts, extra...), ", ")
}

// quoteArgs writes argv so that a shell would read it back the same.
func quoteArgs(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = shellQuote(a)
	}
	return strings.Join(out, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// finalLine describes how a job ended: "Job 42 FAILED: exit code 3".
func finalLine(j *job.Job) string {
	s := fmt.Sprintf("Job %s %s", j.DisplayID(), j.State)
	switch {
	case j.Reason != "":
		s += ": " + j.Reason
	case j.State != job.Succeeded && (j.Signal != "" || j.ExitCode != nil):
		s += ": exit " + exitText(j.ExitCode, j.Signal)
	}
	if j.IsArrayParent() && len(j.ArrayCounts) > 0 {
		s += fmt.Sprintf(" (%d tasks: %s)", j.ArraySize, countsText(j.ArrayCounts, false))
	}
	return s
}

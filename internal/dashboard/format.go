package dashboard

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

const dash = "—"

// stateClass is the CSS class that colours a state: "st-running".
func stateClass(s job.State) string {
	if !s.Valid() {
		return "st-unknown"
	}
	return "st-" + strings.ToLower(string(s))
}

// humanBytes writes a size in IEC units: "512 B", "1.5 KiB", "3.2 GiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	u := -1
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f %s", v, units[u])
	}
	num := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(num, ".0") + " " + units[u]
}

// humanMB writes a memory size given in MiB.
func humanMB(mb int64) string {
	if mb == 0 {
		return "0"
	}
	return humanBytes(mb << 20)
}

// humanDuration writes a duration short and readable: "850ms", "12s",
// "3m04s", "1h02m", "2d03h".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		s := d.Seconds()
		if s < 10 {
			return strconv.FormatFloat(math.Floor(s*10)/10, 'f', -1, 64) + "s"
		}
		return fmt.Sprintf("%ds", int(s))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	days := int(d.Hours()) / 24
	return fmt.Sprintf("%dd%02dh", days, int(d.Hours())%24)
}

// relTime says how long ago t was: "12s ago", "3m ago"; older than a
// day, the date.
func relTime(now, t time.Time) string {
	if t.IsZero() {
		return dash
	}
	d := now.Sub(t)
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	case t.Year() == now.Year():
		return t.Local().Format("Jan 2 15:04")
	}
	return t.Local().Format("Jan 2 2006")
}

// absTime is a timestamp in the server's local time.
func absTime(t time.Time) string {
	if t.IsZero() {
		return dash
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func absTimePtr(t *time.Time) string {
	if t == nil {
		return dash
	}
	return absTime(*t)
}

// formatCost writes a cost with enough digits to be non-zero when it is.
func formatCost(c float64) string {
	switch {
	case c == 0:
		return "0"
	case math.Abs(c) < 0.01:
		return strconv.FormatFloat(c, 'f', 4, 64)
	case math.Abs(c) < 1000:
		return strconv.FormatFloat(c, 'f', 2, 64)
	}
	return strconv.FormatFloat(c, 'f', 0, 64)
}

// formatPrice writes a price per hour.
func formatPrice(p float64) string {
	if p == 0 {
		return "0"
	}
	return strconv.FormatFloat(p, 'f', -1, 64)
}

// formatCPUs writes a CPU count to a thousandth of a core: "0.5", "8".
func formatCPUs(c float64) string {
	return strconv.FormatFloat(math.Round(c*1000)/1000, 'f', -1, 64)
}

// exitString is "0", "137" or the signal that ended the process.
func exitString(code *int, signal string) string {
	switch {
	case signal != "":
		return signal
	case code != nil:
		return strconv.Itoa(*code)
	}
	return dash
}

func exitBad(code *int, signal string) bool {
	return signal != "" || (code != nil && *code != 0)
}

var plainArg = regexp.MustCompile(`^[A-Za-z0-9_./=:,@%+^-]+$`)

// shellQuote writes a command line as a POSIX shell would read it back.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if plainArg.MatchString(a) {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// pct writes a fraction of a whole as a percentage for an SVG attribute,
// clamped to [0, 100].
func pct(part, whole float64) string {
	if whole <= 0 || part <= 0 {
		return "0"
	}
	return strconv.FormatFloat(math.Min(100, 100*part/whole), 'f', 2, 64)
}

package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// ProgressFileEnv names the environment variable that tells a job where
// to report its progress: a file in its attempt dir that the server reads
// while the job runs (`job get`, the API, the dashboard).
const ProgressFileEnv = "HPCML_PROGRESS_FILE"

// Bounds of a progress report. A file beyond MaxProgressBytes, or that
// does not parse, is ignored: a job's bad report must never break `job
// get`. Longer texts are cut.
const (
	MaxProgressBytes   = 64 << 10
	maxProgressMessage = 512 // bytes
	maxProgressUnit    = 32
	maxProgressNumber  = 1e18 // beyond any real count; keeps arithmetic finite
)

// Unit of a progress report counting bytes (formatted as KiB, MiB, ...).
const UnitBytes = "bytes"

// Progress is how far a running job says it has come, as written to the
// file named by HPCML_PROGRESS_FILE: one JSON object, replaced whole
// (write a temporary file beside it, then rename it over).
type Progress struct {
	// Done of Total units ("bytes", "steps", "epochs", ...). Total 0: not
	// known (yet).
	Done  float64 `json:"done"`
	Total float64 `json:"total,omitempty"`
	Unit  string  `json:"unit,omitempty"`
	// Files done of files in all, for jobs that move files.
	FilesDone  int64 `json:"files_done,omitempty"`
	FilesTotal int64 `json:"files_total,omitempty"`
	// Rate is units per second; ETASeconds the time left. 0: not known.
	Rate       float64 `json:"rate,omitempty"`
	ETASeconds float64 `json:"eta_seconds,omitempty"`
	// Message says what the job is doing ("listing", "epoch 3 of 10").
	Message string `json:"message,omitempty"`
	// UpdatedAt is when the job wrote it (the file's time if it says not).
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Fraction is Done/Total, at most 1; ok is false when Total is not known.
// Done may pass Total (a retried piece counted twice): it reads as 100 %.
func (p *Progress) Fraction() (f float64, ok bool) {
	if p.Total <= 0 {
		return 0, false
	}
	return min(p.Done/p.Total, 1), true
}

// ParseProgress reads a progress report, checks its numbers and cleans
// its texts (control characters, which would reach terminals, become
// spaces; long texts are cut).
func ParseProgress(data []byte) (*Progress, error) {
	if len(data) > MaxProgressBytes {
		return nil, fmt.Errorf("progress report of %d bytes is over the limit of %d", len(data), MaxProgressBytes)
	}
	var p Progress
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("progress report: %w", err)
	}
	for _, n := range []struct {
		name string
		v    float64
	}{{"done", p.Done}, {"total", p.Total}, {"rate", p.Rate}, {"eta_seconds", p.ETASeconds},
		{"files_done", float64(p.FilesDone)}, {"files_total", float64(p.FilesTotal)}} {
		if math.IsNaN(n.v) || n.v < 0 || n.v > maxProgressNumber {
			return nil, fmt.Errorf("progress report: %s %v is not between 0 and %g", n.name, n.v, float64(maxProgressNumber))
		}
	}
	p.Unit = cleanText(p.Unit, maxProgressUnit)
	p.Message = cleanText(p.Message, maxProgressMessage)
	return &p, nil
}

// cleanText makes s one printable line of at most n bytes.
func cleanText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimSpace(s[:cut]) + "…"
}

// ReadProgressFile reads the progress report at path: nil without error
// when there is none. Only a regular file is read (not through a
// symbolic link, never a FIFO that would block the reader), at most
// MaxProgressBytes of it.
func ReadProgressFile(path string) (*Progress, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read progress: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read progress: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("read progress: %s is not a regular file", path)
	}
	if info.Size() > MaxProgressBytes {
		return nil, fmt.Errorf("read progress: %s: %d bytes is over the limit of %d", path, info.Size(), MaxProgressBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxProgressBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read progress: %w", err)
	}
	p, err := ParseProgress(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = info.ModTime().UTC()
	}
	return p, nil
}

// WriteProgressFile replaces the progress report at path with p, whole:
// it writes a temporary file beside it and renames it over, so a reader
// sees the old report or the new one. UpdatedAt is set to now if zero.
func WriteProgressFile(path string, p *Progress) error {
	q := *p
	if q.UpdatedAt.IsZero() {
		q.UpdatedAt = time.Now().UTC()
	}
	data, err := json.Marshal(&q)
	if err != nil {
		return fmt.Errorf("write progress: %w", err)
	}
	// A name of its own per write: the tasks of a job share one path.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write progress: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write progress: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write progress: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write progress: %w", err)
	}
	return nil
}

// Amounts renders the numbers of a progress report for people, those
// that are known: "1.2 GiB of 2.6 GiB" (or "40 of 100 epochs"), "3 of 10
// files", "120 MiB/s", "ETA 12s". bytes and dur format byte counts and
// durations in the caller's style.
func (p *Progress) Amounts(bytes func(int64) string, dur func(time.Duration) string) []string {
	isBytes := p.Unit == UnitBytes
	amount := func(x float64) string {
		if isBytes {
			return bytes(int64(x))
		}
		if x == math.Trunc(x) && x < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(math.Round(x*100)/100, 'f', -1, 64)
	}
	unit := ""
	if !isBytes && p.Unit != "" {
		unit = " " + p.Unit
	}
	var parts []string
	switch {
	case p.Total > 0:
		parts = append(parts, amount(p.Done)+" of "+amount(p.Total)+unit)
	case p.Done > 0 || unit != "":
		parts = append(parts, amount(p.Done)+unit)
	}
	if p.FilesTotal > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d files", p.FilesDone, p.FilesTotal))
	} else if p.FilesDone > 0 {
		parts = append(parts, fmt.Sprintf("%d files", p.FilesDone))
	}
	if p.Rate > 0 {
		parts = append(parts, amount(p.Rate)+unit+"/s")
	}
	if p.ETASeconds > 0 {
		parts = append(parts, "ETA "+dur(time.Duration(p.ETASeconds*float64(time.Second)).Round(time.Second)))
	}
	return parts
}

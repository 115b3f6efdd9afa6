package job

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseProgress(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	tests := []struct {
		name    string
		in      string
		wantErr string
		check   func(t *testing.T, p *Progress)
	}{
		{name: "full", in: `{"done":123,"total":456,"unit":"bytes","files_done":1,"files_total":3,"rate":10.5,"eta_seconds":31.4,"message":"copying","updated_at":"2026-01-02T03:04:05Z"}`,
			check: func(t *testing.T, p *Progress) {
				want := Progress{Done: 123, Total: 456, Unit: "bytes", FilesDone: 1, FilesTotal: 3, Rate: 10.5, ETASeconds: 31.4,
					Message: "copying", UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
				if *p != want {
					t.Errorf("got %+v, want %+v", *p, want)
				}
			}},
		{name: "done only", in: `{"done":0.5}`, check: func(t *testing.T, p *Progress) {
			if _, ok := p.Fraction(); ok || p.Done != 0.5 {
				t.Errorf("got %+v", *p)
			}
		}},
		{name: "unknown fields are ignored", in: `{"done":1,"total":2,"loss":0.3}`},
		{name: "not JSON", in: `45%`, wantErr: "progress report"},
		{name: "not an object", in: `[1,2]`, wantErr: "progress report"},
		{name: "wrong type", in: `{"done":"many"}`, wantErr: "progress report"},
		{name: "negative done", in: `{"done":-1}`, wantErr: "done"},
		{name: "negative files", in: `{"done":1,"files_total":-3}`, wantErr: "files_total"},
		{name: "huge total", in: `{"done":1,"total":1e300}`, wantErr: "total"},
		{name: "overflowing number", in: `{"done":1e400}`, wantErr: "progress report"},
		{name: "negative rate", in: `{"done":1,"rate":-5}`, wantErr: "rate"},
		{name: "oversized", in: `{"done":1,"message":"` + strings.Repeat("x", MaxProgressBytes) + `"}`, wantErr: "over the limit"},
		{name: "control characters", in: `{"done":1,"unit":"st\teps","message":"\u001b[2Jboom\nnext"}`,
			check: func(t *testing.T, p *Progress) {
				if p.Message != "[2Jboom next" || p.Unit != "st eps" {
					t.Errorf("message %q unit %q", p.Message, p.Unit)
				}
			}},
		{name: "long texts are cut on a character", in: `{"done":1,"unit":"` + long + `","message":"` + long + long + `"}`,
			check: func(t *testing.T, p *Progress) {
				for _, s := range []string{p.Unit, p.Message} {
					if !strings.HasSuffix(s, "…") || !strings.HasPrefix(s, "éé") || strings.ContainsRune(s, '\uFFFD') {
						t.Errorf("cut text %q", s)
					}
				}
				if len(p.Unit) > maxProgressUnit+len("…") || len(p.Message) > maxProgressMessage+len("…") {
					t.Errorf("unit %d bytes, message %d bytes", len(p.Unit), len(p.Message))
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProgress([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestProgressFraction(t *testing.T) {
	for _, tt := range []struct {
		done, total float64
		want        float64
		ok          bool
	}{{0, 0, 0, false}, {5, 0, 0, false}, {1, 4, 0.25, true}, {6, 4, 1, true}, {4, 4, 1, true}} {
		p := Progress{Done: tt.done, Total: tt.total}
		if got, ok := p.Fraction(); got != tt.want || ok != tt.ok {
			t.Errorf("Fraction of %v/%v = %v, %v; want %v, %v", tt.done, tt.total, got, ok, tt.want, tt.ok)
		}
	}
}

func TestProgressFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "progress.json")

	if p, err := ReadProgressFile(path); p != nil || err != nil {
		t.Fatalf("missing file: %+v, %v; want nothing", p, err)
	}

	want := &Progress{Done: 10, Total: 20, Unit: UnitBytes, FilesDone: 1, FilesTotal: 2, Message: "copying"}
	if err := WriteProgressFile(path, want); err != nil {
		t.Fatal(err)
	}
	if !want.UpdatedAt.IsZero() {
		t.Error("WriteProgressFile changed its argument")
	}
	got, err := ReadProgressFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.UpdatedAt.IsZero() || time.Since(got.UpdatedAt) > time.Minute {
		t.Errorf("updated_at %v, want about now", got.UpdatedAt)
	}
	got.UpdatedAt = time.Time{}
	if *got != *want {
		t.Errorf("read %+v, want %+v", *got, *want)
	}
	// Replaced whole, no temporary file left beside it.
	if err := WriteProgressFile(path, &Progress{Done: 20, Total: 20}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("dir holds %v, want the report alone", entries)
	}
	if got, _ := ReadProgressFile(path); got == nil || got.Done != 20 || got.Message != "" {
		t.Errorf("after replacing: %+v", got)
	}

	// Without updated_at, the file's time stands in.
	if err := os.WriteFile(path, []byte(`{"done":3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	os.Chtimes(path, mtime, mtime)
	if got, err := ReadProgressFile(path); err != nil || !got.UpdatedAt.Equal(mtime) {
		t.Errorf("got %+v, %v; want updated_at %v", got, err, mtime)
	}
}

// TestProgressFileRefused: what a job may leave at the path must not
// block, flood or fool the server reading it.
func TestProgressFileRefused(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.json")
	os.WriteFile(secret, []byte(`{"done":1,"message":"server's file"}`), 0o600)

	cases := map[string]func(path string) error{
		"symlink": func(path string) error { return os.Symlink(secret, path) },
		"fifo":    func(path string) error { return syscall.Mkfifo(path, 0o644) },
		"dir":     func(path string) error { return os.Mkdir(path, 0o755) },
		"oversized": func(path string) error {
			return os.WriteFile(path, []byte(`{"done":1}`+strings.Repeat(" ", MaxProgressBytes)), 0o644)
		},
		"garbage": func(path string) error { return os.WriteFile(path, []byte("\x00\x01"), 0o644) },
		"torn":    func(path string) error { return os.WriteFile(path, []byte(`{"done":1,"tot`), 0o644) },
	}
	for name, create := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := create(path); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var p *Progress
			var err error
			go func() {
				defer close(done)
				p, err = ReadProgressFile(path)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadProgressFile blocked")
			}
			if p != nil || err == nil {
				t.Errorf("got %+v, %v; want an error", p, err)
			}
		})
	}
}

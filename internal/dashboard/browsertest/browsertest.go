// Package browsertest starts headless Chromium for tests of the dashboard
// (its own and the server's end-to-end tests) and collects what the page
// reports as errors: console.error calls, uncaught exceptions and the
// browser's own error log (failed loads, CSP violations).
//
// It needs Debian's chromium at /usr/bin/chromium (or HPCML_CHROMIUM). When
// the browser is missing the test fails, saying so; set HPCML_SKIP_BROWSER=1
// to skip browser tests on purpose.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// DefaultExecPath is where Debian's chromium package puts the browser.
const DefaultExecPath = "/usr/bin/chromium"

// Timeout bounds one browser session, so that a hung page cannot hang the
// test binary.
const Timeout = 3 * time.Minute

// ExecPath is the browser the tests run: $HPCML_CHROMIUM or DefaultExecPath.
func ExecPath() string {
	if p := os.Getenv("HPCML_CHROMIUM"); p != "" {
		return p
	}
	return DefaultExecPath
}

type consoleKey struct{}

// Start launches headless Chromium with a fresh profile and returns the
// context of one tab, for chromedp.Do and chromedp.Run. The browser is shut
// down when the test ends. From the start, the tab's errors are collected
// into the ConsoleErrors that Console(ctx) returns.
func Start(t testing.TB) context.Context {
	t.Helper()
	if os.Getenv("HPCML_SKIP_BROWSER") == "1" {
		t.Skip("HPCML_SKIP_BROWSER=1: browser tests skipped")
	}
	path := ExecPath()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("browser test: no Chromium at %s (%v); install it with `apt-get install chromium`, "+
			"point HPCML_CHROMIUM at another build, or set HPCML_SKIP_BROWSER=1 to skip browser tests", path, err)
	}
	profile := t.TempDir() // removed after the browser is gone: cleanups run last-in first-out

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	base, cancelBase := context.WithTimeout(context.Background(), Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		cancelBase()
	})

	// Open the tab now, so a browser that cannot start fails here, clearly.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser test: starting %s: %v", path, err)
	}
	errs := &ConsoleErrors{}
	if err := chromedp.Listen(ctx, errs.observe); err != nil {
		t.Fatalf("browser test: listening to the console: %v", err)
	}
	return context.WithValue(ctx, consoleKey{}, errs)
}

// Console returns the errors collected for the tab of a context from Start.
func Console(ctx context.Context) *ConsoleErrors {
	c, _ := ctx.Value(consoleKey{}).(*ConsoleErrors)
	if c == nil {
		panic("browsertest.Console: the context does not come from browsertest.Start")
	}
	return c
}

// ConsoleErrors collects a page's errors. It is safe for concurrent use.
type ConsoleErrors struct {
	mu   sync.Mutex
	msgs []string
}

// observe is called on chromedp's event loop: it must only record.
func (c *ConsoleErrors) observe(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range e.Args {
			switch {
			case len(a.Value) > 0:
				parts = append(parts, string(a.Value))
			case a.Description != "":
				parts = append(parts, a.Description)
			default:
				parts = append(parts, string(a.Type))
			}
		}
		msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		if d == nil {
			return
		}
		msg = "exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		if d.URL != "" {
			msg += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
		}
	case *log.EventEntryAdded:
		if e.Entry == nil || e.Entry.Level != log.EntryLevelError {
			return
		}
		msg = "log." + string(e.Entry.Source) + ": " + e.Entry.Text
		if e.Entry.URL != "" {
			msg += " (" + e.Entry.URL + ")"
		}
	default:
		return
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, msg)
	c.mu.Unlock()
}

// Messages returns the errors seen so far.
func (c *ConsoleErrors) Messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// Reset forgets the errors seen so far (e.g. after provoking one on purpose).
func (c *ConsoleErrors) Reset() {
	c.mu.Lock()
	c.msgs = nil
	c.mu.Unlock()
}

// Check fails the test with every error seen so far.
func (c *ConsoleErrors) Check(t testing.TB) {
	t.Helper()
	for _, m := range c.Messages() {
		t.Errorf("browser console error: %s", m)
	}
}

// SetCookie puts an HTTP cookie into the browser for the server at baseURL
// (e.g. dashboard.SessionCookie, to be logged in without the form).
func SetCookie(ctx context.Context, baseURL string, c *http.Cookie) error {
	if c == nil {
		return errors.New("browsertest.SetCookie: nil cookie")
	}
	p := network.SetCookieParams{
		Name:     c.Name,
		Value:    c.Value,
		URL:      baseURL,
		Path:     c.Path,
		HTTPOnly: &c.HttpOnly,
		Secure:   &c.Secure,
	}
	switch c.SameSite {
	case http.SameSiteStrictMode:
		p.SameSite = network.CookieSameSiteStrict
	case http.SameSiteLaxMode:
		p.SameSite = network.CookieSameSiteLax
	case http.SameSiteNoneMode:
		p.SameSite = network.CookieSameSiteNone
	}
	if _, err := chromedp.Call(ctx, network.SetCookie, p); err != nil {
		return fmt.Errorf("setting cookie %s in the browser: %w", c.Name, err)
	}
	return nil
}

// Command transfer benchmarks `hpcml data sync` against rclone and
// `aws s3 sync`, in the same invocation, against the same S3 server: a
// versitygw (posix backend) it starts on a free loopback port over a temp
// dir. For each data set (many small files, some medium ones, one large
// one) and each direction (upload local→S3, download S3→local) it runs the
// three tools with the same concurrency, each into a fresh destination,
// times them by wall clock (process start to exit), and checks that the
// destination holds the data set's file count and bytes (and the content
// of a few sample files) afterwards.
//
//	make build bench-deps
//	go run ./bench/transfer -hpcml bin/hpcml                 # 10,000 × 4 KiB, 100 × 1 MiB, 1 × 1 GiB
//	go run ./bench/transfer -small 2000 -medium 50 -large-mib 256 -runs 3
//
// Concurrency -c: hpcml --transfers/--checkers, rclone --transfers/--checkers,
// aws s3.max_concurrent_requests. Everything else is each tool's default
// (rclone: 5 MiB chunks, 4 parts in flight per file, multipart above 200 MiB,
// 4 streams per download above 250 MiB; awscli: 8 MiB chunks above 8 MiB, the
// concurrency shared by files and parts; hpcml: 16 MiB parts, 4 in flight per
// file above 8 MiB), with one exception: rclone runs with
// --expect-continue-timeout 0 (-rclone-expect-continue-timeout). rclone 1.60
// sends "Expect: 100-Continue" with every PUT body above 2 MiB, and versitygw
// v1.8.0 answers only the lower-case "100-continue" (the token is
// case-insensitive), so with rclone's default rclone waits its full 1 s timeout
// before every part: a 256 MiB upload took 15.6 s instead of 2.6 s. A real S3
// answers at once; 0 sends the body without waiting, which is what rclone
// would see there, less one round trip.
//
// The page cache is not dropped (that needs root and affects the whole
// machine): the source files are written just before, the S3 objects are
// written by the upload rounds, so every tool reads from memory and the
// numbers measure the tools and the server, not the disk. The server and the
// client share the machine's cores. Each tool first syncs a tiny data set
// both ways, untimed, so that binaries, Python modules and the server are
// warm. Downloads read the objects awscli uploaded in the first run (plain
// objects without user metadata, as any S3 client writes them), or those of
// the first tool run if awscli is not among -tools.
//
// Before every timed run the page cache's dirty pages are written back
// (sync(2), untimed), so that no run pays for the writeback of what an
// earlier one wrote.
//
// Nothing is deleted until exit: on ext4 without a journal, files created
// right after many deletions are slow to allocate (docs/benchmarks.md), and a
// tool must not pay for the previous one's cleanup.
package main

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
)

const (
	bucket    = "bench"
	accessKey = "benchaccess"
	secretKey = "benchsecret0123456789"
	region    = "us-east-1"
)

// group is count files of size bytes each.
type group struct {
	count int
	size  int64
}

// dataset is a tree of files written under dir.
type dataset struct {
	name   string
	groups []group
	dir    string
	files  []string // slash-separated relative paths, sorted
	bytes  int64
}

// measurement is one tool's run of one data set in one direction.
type measurement struct {
	Set        string  `json:"set"`
	Direction  string  `json:"direction"`
	Tool       string  `json:"tool"`
	Files      int     `json:"files"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	MiBPerSec  float64 `json:"mib_per_second"`
	FilesPerS  float64 `json:"files_per_second"`
	CPUSeconds float64 `json:"client_cpu_seconds"` // user+sys of the tool's process
	ServerCPU  float64 `json:"server_cpu_seconds"` // user+sys of versitygw meanwhile
	// RunsSeconds are every run's seconds (in the median result).
	RunsSeconds []float64 `json:"runs_seconds,omitempty"`
}

// ratio compares hpcml's speed with a peer's: peer seconds / hpcml
// seconds, so above 1 means hpcml was faster.
type ratio struct {
	Set       string  `json:"set"`
	Direction string  `json:"direction"`
	VsRclone  float64 `json:"hpcml_vs_rclone,omitempty"`
	VsAwscli  float64 `json:"hpcml_vs_awscli,omitempty"`
}

type bench struct {
	tmp      string
	gwDir    string // versitygw's posix root; the bucket is a dir in it
	endpoint string // http://127.0.0.1:PORT
	conc     int
	timeout  time.Duration
	// expectContinue is rclone's --expect-continue-timeout.
	expectContinue time.Duration
	hpcml          string
	rclone         string
	aws            string
	env            []string
	gw             *exec.Cmd
	gwLog          *os.File
	gwLogOff       int64 // how much of gwLog serverErrors has read

	mu      sync.Mutex
	current *exec.Cmd // the tool running now, killed on interrupt
}

var (
	cleanups []func()
	cleanMu  sync.Mutex
)

func atExit(f func()) {
	cleanMu.Lock()
	defer cleanMu.Unlock()
	cleanups = append(cleanups, f)
}

func runCleanups() {
	cleanMu.Lock()
	defer cleanMu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

// fatalf stops the server and removes the temp dir, then exits 1.
func fatalf(format string, args ...any) {
	log.Printf("FAIL: "+format, args...)
	runCleanups()
	os.Exit(1)
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench/transfer: ")
	small := flag.Int("small", 10000, "files of 4 KiB in the small data set (0: skip it)")
	medium := flag.Int("medium", 100, "files of 1 MiB in the medium data set (0: skip it)")
	largeMiB := flag.Int("large-mib", 1024, "size in MiB of the one file of the large data set (0: skip it)")
	conc := flag.Int("c", 16, "concurrency of every tool: hpcml and rclone --transfers/--checkers, aws s3.max_concurrent_requests")
	runs := flag.Int("runs", 1, "repeat every measurement (tool order rotates); the median run counts")
	bin := flag.String("hpcml", "", "hpcml binary (default: build ./cmd/hpcml)")
	rcloneBin := flag.String("rclone", "rclone", "rclone binary")
	expectContinue := flag.Duration("rclone-expect-continue-timeout", 0,
		"rclone's --expect-continue-timeout (its default is 1s; see the package comment for why 0)")
	awsBin := flag.String("aws", "", "aws binary (default: Debian's /usr/bin/aws if present, else aws on PATH)")
	gwBin := flag.String("versitygw", "", "versitygw binary (default: on PATH or in $(go env GOPATH)/bin)")
	toolsFlag := flag.String("tools", "hpcml,rclone,awscli", "tools to run, comma-separated")
	dirsFlag := flag.String("directions", "upload,download", "directions to run, comma-separated")
	timeout := flag.Duration("timeout", 30*time.Minute, "limit for one tool's run")
	keep := flag.Bool("keep", false, "keep the temp dir (data, server root, downloads) at exit")
	jsonOut := flag.Bool("json", false, "print the results as JSON on stdout")
	flag.Parse()
	if *conc < 1 || *runs < 1 {
		log.Fatal("-c and -runs must be at least 1")
	}
	tools := strings.Split(*toolsFlag, ",")
	for _, t := range tools {
		if t != "hpcml" && t != "rclone" && t != "awscli" {
			log.Fatalf("-tools: unknown tool %q (want hpcml, rclone, awscli)", t)
		}
	}
	directions := strings.Split(*dirsFlag, ",")
	for _, d := range directions {
		if d != "upload" && d != "download" {
			log.Fatalf("-directions: unknown direction %q (want upload, download)", d)
		}
	}
	if slices.Contains(directions, "download") && !slices.Contains(directions, "upload") {
		log.Fatal("-directions: download needs upload (downloads read what the uploads wrote)")
	}

	sig := make(chan os.Signal, 1)
	// SIGPIPE too: output piped into head must not leave the server running.
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	b := &bench{conc: *conc, timeout: *timeout, expectContinue: *expectContinue}
	go func() {
		s := <-sig
		b.mu.Lock()
		if b.current != nil && b.current.Process != nil {
			b.current.Process.Kill()
		}
		b.mu.Unlock()
		fatalf("interrupted (%v)", s)
	}()

	tmp, err := os.MkdirTemp("", "hpcml-bench-transfer-*")
	if err != nil {
		log.Fatal(err)
	}
	b.tmp = tmp
	atExit(func() {
		if *keep {
			log.Printf("kept %s", tmp)
			return
		}
		os.RemoveAll(tmp)
	})

	b.hpcml = *bin
	if b.hpcml == "" {
		b.hpcml = filepath.Join(tmp, "hpcml")
		build := exec.Command("go", "build", "-o", b.hpcml, "./cmd/hpcml")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fatalf("build hpcml: %v", err)
		}
	} else if b.hpcml, err = filepath.Abs(b.hpcml); err != nil {
		fatalf("%v", err)
	}
	if slices.Contains(tools, "rclone") {
		b.rclone = mustLookPath(*rcloneBin, "rclone", "scripts/bench-deps.sh installs it")
	}
	if slices.Contains(tools, "awscli") {
		a := *awsBin
		if a == "" {
			a = "aws"
			if _, err := os.Stat("/usr/bin/aws"); err == nil {
				a = "/usr/bin/aws"
			}
		}
		b.aws = mustLookPath(a, "aws", "scripts/bench-deps.sh installs Debian's awscli")
	}
	gw := *gwBin
	if gw == "" {
		gw = "versitygw"
		if _, err := exec.LookPath(gw); err != nil {
			if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
				gw = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
			}
		}
	}
	gw = mustLookPath(gw, "versitygw", "scripts/test-deps.sh installs it")

	versions := map[string]string{
		"hpcml":     load.BuildVersion(b.hpcml, true),
		"versitygw": load.BuildVersion(gw, false),
	}
	if b.rclone != "" {
		versions["rclone"] = load.FirstLine(b.rclone, "version")
	}
	if b.aws != "" {
		versions["awscli"] = load.FirstLine(b.aws, "--version")
	}

	b.setupEnv()
	b.startServer(gw)

	// Data sets.
	var sets []*dataset
	if *small > 0 {
		sets = append(sets, &dataset{name: "small", groups: []group{{*small, 4 << 10}}})
	}
	if *medium > 0 {
		sets = append(sets, &dataset{name: "medium", groups: []group{{*medium, 1 << 20}}})
	}
	if *largeMiB > 0 {
		sets = append(sets, &dataset{name: "large", groups: []group{{1, int64(*largeMiB) << 20}}})
	}
	warm := &dataset{name: "warmup", groups: []group{{16, 4 << 10}, {1, 20 << 20}}}
	genStart := time.Now()
	for _, ds := range append([]*dataset{warm}, sets...) {
		if err := ds.generate(filepath.Join(tmp, "src", ds.name)); err != nil {
			fatalf("generate %s: %v", ds.name, err)
		}
	}
	if !*jsonOut {
		fmt.Printf("# hpcml %s\n# rclone %s\n# awscli %s\n# versitygw %s (posix backend, %s)\n",
			versions["hpcml"], versions["rclone"], versions["awscli"], versions["versitygw"], b.gwDir)
		fmt.Printf("# concurrency %d, %d run(s), rclone --expect-continue-timeout %s, data generated in %.1fs under %s;\n"+
			"# page cache not dropped (reads are warm); server and tools share the machine's cores\n",
			*conc, *runs, expectContinue, time.Since(genStart).Seconds(), tmp)
	}

	// Warm-up: every tool both ways on the tiny set, untimed but checked.
	for _, t := range tools {
		up := "warmup/" + t + "/"
		b.runTool(t, "upload", warm, up, "")
		b.runTool(t, "download", warm, up, filepath.Join(tmp, "dl", "warmup", t))
	}

	all := map[string][]measurement{} // by set/direction/tool
	key := func(set, dir, tool string) string { return set + "/" + dir + "/" + tool }
	seed := map[string]string{} // data set -> the prefix downloads read
	for run := 1; run <= *runs; run++ {
		order := slices.Clone(tools)
		for range (run - 1) % len(order) {
			order = append(order[1:], order[0])
		}
		for _, ds := range sets {
			for _, dir := range directions {
				for _, t := range order {
					var m measurement
					if dir == "upload" {
						prefix := fmt.Sprintf("r%d/%s/%s/", run, ds.name, t)
						m = b.runTool(t, dir, ds, prefix, "")
						if seed[ds.name] == "" || t == "awscli" && run == 1 {
							seed[ds.name] = prefix
						}
					} else {
						m = b.runTool(t, dir, ds, seed[ds.name], filepath.Join(tmp, "dl", fmt.Sprintf("r%d", run), ds.name, t))
					}
					k := key(ds.name, dir, t)
					all[k] = append(all[k], m)
					log.Printf("run %d: %-6s %-8s %-6s %8.2fs %9.1f MiB/s %9.0f files/s  cpu %6.2fs  server cpu %6.2fs",
						run, m.Set, m.Direction, m.Tool, m.Seconds, m.MiBPerSec, m.FilesPerS, m.CPUSeconds, m.ServerCPU)
				}
			}
		}
	}

	// The median run of every measurement, then the ratios.
	var results []measurement
	var ratios []ratio
	for _, ds := range sets {
		for _, dir := range directions {
			secs := map[string]float64{}
			for _, t := range tools {
				ms := slices.Clone(all[key(ds.name, dir, t)])
				var runsSec []float64
				for _, m := range ms {
					runsSec = append(runsSec, round(m.Seconds, 3))
				}
				slices.SortFunc(ms, func(a, b measurement) int { return cmp.Compare(a.Seconds, b.Seconds) })
				med := ms[len(ms)/2]
				if *runs > 1 {
					med.RunsSeconds = runsSec
				}
				results = append(results, med)
				secs[t] = med.Seconds
			}
			if h := secs["hpcml"]; h > 0 && (secs["rclone"] > 0 || secs["awscli"] > 0) {
				ratios = append(ratios, ratio{Set: ds.name, Direction: dir,
					VsRclone: round(secs["rclone"]/h, 3), VsAwscli: round(secs["awscli"]/h, 3)})
			}
		}
	}
	if *jsonOut {
		out := map[string]any{
			"concurrency": *conc, "runs": *runs, "versions": versions,
			"rclone_expect_continue_timeout": expectContinue.String(),
			"data_sets":                      setsJSON(sets), "results": results, "ratios": ratios,
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		printTable(results, ratios, *runs)
	}
	runCleanups()
}

func setsJSON(sets []*dataset) []map[string]any {
	var out []map[string]any
	for _, ds := range sets {
		out = append(out, map[string]any{"name": ds.name, "files": len(ds.files), "bytes": ds.bytes})
	}
	return out
}

func printTable(results []measurement, ratios []ratio, runs int) {
	title := "results"
	if runs > 1 {
		title = fmt.Sprintf("results (median of %d runs)", runs)
	}
	fmt.Printf("\n%s\n%-7s %6s %10s %-9s %-7s %9s %9s %9s %8s %10s\n", title,
		"set", "files", "MiB", "direction", "tool", "seconds", "MiB/s", "files/s", "cpu_s", "server_s")
	for _, m := range results {
		fmt.Printf("%-7s %6d %10.1f %-9s %-7s %9.2f %9.1f %9.0f %8.2f %10.2f\n", m.Set, m.Files,
			float64(m.Bytes)/(1<<20), m.Direction, m.Tool, m.Seconds, m.MiBPerSec, m.FilesPerS, m.CPUSeconds, m.ServerCPU)
	}
	if len(ratios) == 0 {
		return
	}
	fmt.Printf("\nhpcml speed relative to the peers (peer seconds / hpcml seconds; goal: >= 1.0 rclone, >= 1.5 awscli)\n")
	fmt.Printf("%-7s %-9s %13s %13s\n", "set", "direction", "hpcml/rclone", "hpcml/awscli")
	for _, r := range ratios {
		fmt.Printf("%-7s %-9s %13s %13s\n", r.Set, r.Direction, fmtRatio(r.VsRclone, 1.0), fmtRatio(r.VsAwscli, 1.5))
	}
}

func fmtRatio(r, goal float64) string {
	if r == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.2fx", r)
	if r < goal {
		s += " (<goal)"
	}
	return s
}

func round(f float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(f*p+0.5)) / p
}

// setupEnv builds the environment every tool runs in: the server's
// credentials, and configuration files of their own (nothing from the
// user's ~/.aws or rclone config).
func (b *bench) setupEnv() {
	cfgDir := filepath.Join(b.tmp, "config")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		fatalf("%v", err)
	}
	awsConfig := filepath.Join(cfgDir, "aws-config")
	awsCreds := filepath.Join(cfgDir, "aws-credentials")
	rcloneConf := filepath.Join(cfgDir, "rclone.conf")
	for _, f := range []string{awsConfig, awsCreds, rcloneConf} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			fatalf("%v", err)
		}
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "RCLONE_") {
			continue
		}
		b.env = append(b.env, kv)
	}
	b.env = append(b.env,
		"AWS_ACCESS_KEY_ID="+accessKey,
		"AWS_SECRET_ACCESS_KEY="+secretKey,
		"AWS_DEFAULT_REGION="+region,
		"AWS_CONFIG_FILE="+awsConfig,
		"AWS_SHARED_CREDENTIALS_FILE="+awsCreds,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PAGER=",
		"RCLONE_CONFIG="+rcloneConf,
		"RCLONE_CONFIG_BENCH_TYPE=s3",
		"RCLONE_CONFIG_BENCH_PROVIDER=Other",
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+accessKey,
		"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+secretKey,
		"RCLONE_CONFIG_BENCH_REGION="+region,
		"RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true",
	)
	if b.aws != "" {
		for _, kv := range [][2]string{
			{"default.s3.max_concurrent_requests", strconv.Itoa(b.conc)},
			{"default.s3.addressing_style", "path"},
		} {
			cmd := exec.Command(b.aws, "configure", "set", kv[0], kv[1])
			cmd.Env = b.env
			if out, err := cmd.CombinedOutput(); err != nil {
				fatalf("aws configure set %s: %v: %s", kv[0], err, out)
			}
		}
	}
}

// startServer starts versitygw on a free loopback port over a temp dir,
// with the bucket made as a directory, and registers its stop (by PID).
func (b *bench) startServer(gw string) {
	b.gwDir = filepath.Join(b.tmp, "s3")
	if err := os.MkdirAll(b.gwDir, 0o755); err != nil {
		fatalf("%v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	b.endpoint = "http://" + addr
	b.env = append(b.env, "RCLONE_CONFIG_BENCH_ENDPOINT="+b.endpoint)
	if b.gwLog, err = os.Create(filepath.Join(b.tmp, "versitygw.log")); err != nil {
		fatalf("%v", err)
	}
	b.gw = exec.Command(gw, "--access", accessKey, "--secret", secretKey, "--port", addr, "posix", b.gwDir)
	b.gw.Stdout, b.gw.Stderr = b.gwLog, b.gwLog
	// Its own process group: a Ctrl-C reaches this program, which stops
	// the server itself after the running tool.
	b.gw.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.gw.Start(); err != nil {
		fatalf("start versitygw: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- b.gw.Wait() }()
	pid := b.gw.Process.Pid
	atExit(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(pid, syscall.SIGKILL)
			<-exited
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(b.gwLog.Name())
			fatalf("versitygw exited: %v: %s", err, log)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			fatalf("versitygw did not listen on %s within 15s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The bucket is made through the S3 API, not as a directory: versitygw
	// keeps a bucket's ACL with it, and without one it answers rclone's
	// create-bucket call (made before every sync) with 500, which rclone
	// retries with backoff for seconds.
	if err := createBucket(b.endpoint, bucket); err != nil {
		fatalf("create bucket: %v", err)
	}
}

// createBucket makes a bucket with a PUT signed with AWS signature V4.
func createBucket(endpoint, name string) error {
	now := time.Now().UTC()
	amzDate, day := now.Format("20060102T150405Z"), now.Format("20060102")
	host := strings.TrimPrefix(endpoint, "http://")
	empty := sha256.Sum256(nil)
	payload := hex.EncodeToString(empty[:])
	const signed = "host;x-amz-content-sha256;x-amz-date"
	canonical := "PUT\n/" + name + "\n\n" +
		"host:" + host + "\nx-amz-content-sha256:" + payload + "\nx-amz-date:" + amzDate + "\n\n" +
		signed + "\n" + payload
	scope := day + "/" + region + "/s3/aws4_request"
	ch := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(ch[:])
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	k := mac([]byte("AWS4"+secretKey), day)
	k = mac(k, region)
	k = mac(k, "s3")
	k = mac(k, "aws4_request")
	req, err := http.NewRequest(http.MethodPut, endpoint+"/"+name, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payload)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+accessKey+"/"+scope+
		", SignedHeaders="+signed+", Signature="+hex.EncodeToString(mac(k, toSign)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT /%s: %s: %s", name, resp.Status, body)
	}
	return nil
}

// serverErrors counts the 5xx answers versitygw logged since the last
// call: a tool that met some retried them, and its time includes that.
func (b *bench) serverErrors() int {
	data, err := os.ReadFile(b.gwLog.Name())
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(data[min(b.gwLogOff, int64(len(data))):]), "\n") {
		if f := strings.Split(line, " | "); len(f) > 2 && strings.TrimSpace(f[1]) == "vgw" && strings.HasPrefix(strings.TrimSpace(f[2]), "5") {
			n++
		}
	}
	b.gwLogOff = int64(len(data))
	return n
}

// serverCPU is versitygw's user+system CPU time so far, in seconds.
func (b *bench) serverCPU() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.gw.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces), from field 3.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// runTool runs one tool on one data set in one direction, checks the
// destination, and returns the timing. For an upload, prefix is the
// destination under the bucket; for a download it is the source, and
// local the destination directory.
func (b *bench) runTool(tool, dir string, ds *dataset, prefix, local string) measurement {
	var src, dst string
	s3 := func() string {
		switch tool {
		case "hpcml":
			return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&use_path_style=true", bucket, prefix, b.endpoint, region)
		case "rclone":
			return "bench:" + bucket + "/" + prefix
		default:
			return "s3://" + bucket + "/" + prefix
		}
	}()
	if dir == "upload" {
		src, dst = ds.dir+"/", s3
	} else {
		if err := os.MkdirAll(local, 0o755); err != nil {
			fatalf("%v", err)
		}
		src, dst = s3, local+"/"
	}
	c := strconv.Itoa(b.conc)
	var cmd *exec.Cmd
	switch tool {
	case "hpcml":
		cmd = exec.Command(b.hpcml, "data", "sync", src, dst, "--transfers", c, "--checkers", c, "--no-progress")
	case "rclone":
		cmd = exec.Command(b.rclone, "sync", src, dst, "--transfers", c, "--checkers", c,
			"--expect-continue-timeout", b.expectContinue.String())
	case "awscli":
		cmd = exec.Command(b.aws, "s3", "sync", src, dst, "--endpoint-url", b.endpoint, "--only-show-errors", "--no-progress")
	}
	cmd.Env = b.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Write back what earlier runs left dirty, untimed: on this kind of
	// VM writeback costs a core for about a second per GiB (a 1 GiB dd
	// with fdatasync: 1.7 s of system CPU), and the kernel does it 30 s
	// after the write, so without this a run pays at random for the data
	// a previous tool wrote. What the run itself writes stays its cost.
	syscall.Sync()
	cpu0 := b.serverCPU()
	start := time.Now()
	b.mu.Lock()
	err := cmd.Start()
	b.current = cmd
	b.mu.Unlock()
	if err != nil {
		fatalf("%s %s %s: %v", tool, dir, ds.name, err)
	}
	timer := time.AfterFunc(b.timeout, func() { cmd.Process.Kill() })
	err = cmd.Wait()
	secs := time.Since(start).Seconds()
	timer.Stop()
	b.mu.Lock()
	b.current = nil
	b.mu.Unlock()
	srvCPU := b.serverCPU() - cpu0
	if n := b.serverErrors(); n > 0 {
		log.Printf("warning: %s %s %s: the server answered %d requests with 5xx (see %s)", tool, dir, ds.name, n, b.gwLog.Name())
	}
	if err != nil {
		fatalf("%s %s %s: %v (after %.1fs)\n$ %s\n%s", tool, dir, ds.name, err, secs, strings.Join(cmd.Args, " "), tail(out.String(), 4000))
	}
	// Check the destination: for an upload, the objects as versitygw's
	// posix backend stores them (one file per object under the bucket dir).
	checkDir := local
	if dir == "upload" {
		checkDir = filepath.Join(b.gwDir, bucket, filepath.FromSlash(prefix))
	}
	if err := ds.check(checkDir); err != nil {
		fatalf("%s %s %s: destination %s is wrong: %v\n$ %s\n%s", tool, dir, ds.name, checkDir, err, strings.Join(cmd.Args, " "), tail(out.String(), 4000))
	}
	ps := cmd.ProcessState
	return measurement{
		Set: ds.name, Direction: dir, Tool: tool, Files: len(ds.files), Bytes: ds.bytes,
		Seconds:    round(secs, 3),
		MiBPerSec:  round(float64(ds.bytes)/(1<<20)/secs, 1),
		FilesPerS:  round(float64(len(ds.files))/secs, 1),
		CPUSeconds: round((ps.UserTime() + ps.SystemTime()).Seconds(), 2),
		ServerCPU:  round(srvCPU, 2),
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// generate writes the data set's files under dir: random (incompressible)
// content, different in every file, at most 1,000 files per directory.
func (ds *dataset) generate(dir string) error {
	ds.dir = dir
	rng := rand.NewChaCha8(sha256.Sum256([]byte("hpcml bench/transfer " + ds.name)))
	buf := make([]byte, 1<<20)
	i := 0
	for _, g := range ds.groups {
		for range g.count {
			rel := fmt.Sprintf("d%03d/f%06d.bin", i/1000, i)
			i++
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			for left := g.size; left > 0; {
				chunk := buf[:min(left, int64(len(buf)))]
				rng.Read(chunk)
				if _, err := f.Write(chunk); err != nil {
					f.Close()
					return err
				}
				left -= int64(len(chunk))
			}
			if err := f.Close(); err != nil {
				return err
			}
			ds.files = append(ds.files, rel)
			ds.bytes += g.size
		}
	}
	slices.Sort(ds.files)
	return nil
}

// check verifies that dir holds exactly the data set: the same number of
// regular files, the same total bytes, and for a few sample files (first,
// middle and last) the same content as the source.
func (ds *dataset) check(dir string) error {
	var n int
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return nil // nothing arrived: 0 files
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n++
		total += info.Size()
		return nil
	})
	if err != nil {
		return err
	}
	if n != len(ds.files) || total != ds.bytes {
		return fmt.Errorf("%d files, %d bytes; want %d files, %d bytes", n, total, len(ds.files), ds.bytes)
	}
	samples := []string{ds.files[0], ds.files[len(ds.files)/2], ds.files[len(ds.files)-1]}
	for _, rel := range slices.Compact(samples) {
		if err := sameContent(filepath.Join(ds.dir, filepath.FromSlash(rel)), filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
			return err
		}
	}
	return nil
}

func sameContent(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s differs from the source %s near offset %d", b, a, off)
		}
		off += int64(na)
		aEnd := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		bEnd := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		if aEnd && bEnd {
			return nil
		}
		if ea != nil && !aEnd {
			return ea
		}
		if eb != nil && !bEnd {
			return eb
		}
		if aEnd != bEnd {
			return fmt.Errorf("%s and the source %s differ in length", b, a)
		}
	}
}

// mustLookPath resolves a peer tool or stops the benchmark saying how to
// get it.
func mustLookPath(bin, name, hint string) string {
	p, err := load.LookPath(bin, name, hint)
	if err != nil {
		fatalf("%v", err)
	}
	return p
}

// Command transform measures `hpcml transform` (batch transform): rows
// scored per second with 1 and 2 worker jobs, against scoring the same
// files in a single in-process loop with the same model and batch size
// (the ratio is the platform's overhead: planning, job start, the part
// objects and the commit).
//
//	go run ./bench/transform -hpcml bin/hpcml [-rows 2000000] [-files 4] [-hidden 64] [-batch 256]
//
// The input is -files CSV files of -rows rows in all (an id and 8
// features); the model an MLP 8 → hidden → hidden → 3 with softmax,
// exported to ONNX and registered with a fresh `hpcml server` (local
// backend, every CPU). Each transform writes its output (joined with the
// id) to its own prefix; its time is the command's wall clock, from
// before planning until the report is printed. The in-process loop reads
// each file line by line, parses the features, scores batches of -batch
// rows with serve.Model and writes the same CSV output to a file.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/batchtransform"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/serve/servetest"
)

const features = 8

type result struct {
	Name       string  `json:"name"`
	Workers    int     `json:"workers,omitempty"`
	CPUs       int     `json:"cpus_per_worker,omitempty"`
	Rows       int64   `json:"rows"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rows_per_second"`
	// Ratio is this run's rows/s over the in-process loop's.
	Ratio float64 `json:"ratio_to_loop"`
}

func main() {
	hpcml := flag.String("hpcml", "bin/hpcml", "the hpcml binary")
	rows := flag.Int("rows", 2_000_000, "rows in all")
	files := flag.Int("files", 4, "input files")
	hidden := flag.Int("hidden", 64, "width of the MLP's hidden layers")
	batch := flag.Int("batch", 256, "rows per model execution")
	out := flag.String("out", "", "write the results as JSON to this file")
	keep := flag.String("keep", "", "work in this directory and keep it (input, model.onnx, outputs), not a temporary one")
	flag.Parse()
	if err := run(*hpcml, *rows, *files, *hidden, *batch, *out, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/transform:", err)
		os.Exit(1)
	}
}

func run(hpcml string, rows, files, hidden, batch int, outFile, keep string) error {
	ctx := context.Background()
	exe, err := filepath.Abs(hpcml)
	if err != nil {
		return err
	}
	dir := keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "hpcml-bench-transform-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	in := filepath.Join(dir, "input")
	if err := writeInput(in, rows, files); err != nil {
		return err
	}
	modelBytes, err := exportModel(hidden)
	if err != nil {
		return err
	}
	modelPath := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(modelPath, modelBytes, 0o644); err != nil {
		return err
	}
	fmt.Printf("bench/transform: %d rows in %d CSV files, MLP %d → %d → %d → 3, batch %d; %d CPUs, load %s\n",
		rows, files, features, hidden, hidden, batch, runtime.NumCPU(), load.LoadAvg())

	var results []result
	secs, n, err := inProcessLoop(ctx, modelBytes, in, filepath.Join(dir, "loop.out"), batch)
	if err != nil {
		return fmt.Errorf("in-process loop: %w", err)
	}
	base := float64(n) / secs
	results = append(results, result{Name: "in-process loop", Rows: n, Seconds: secs, RowsPerSec: base, Ratio: 1})

	port, err := load.FreePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv, err := load.StartServer(ctx, exe, filepath.Join(dir, "server"), addr, nil)
	if err != nil {
		return err
	}
	defer srv.Stop()
	cli := func(args ...string) ([]byte, error) {
		cmd := exec.Command(exe, append(args, "--server", "http://"+addr)...)
		cmd.Env = append(os.Environ(), "HPCML_TOKEN="+srv.Token)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("hpcml %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		return b, nil
	}
	if _, err := cli("model", "register", "bench", "--artifact", modelPath); err != nil {
		return err
	}
	// 1 and 2 workers of 1 CPU each, and 1 worker given both CPUs (it
	// scores two parts at once).
	for _, run := range []struct{ workers, cpus int }{{1, 1}, {2, 1}, {1, 2}} {
		w := run.workers
		start := time.Now()
		b, err := cli("transform", "--model", "bench", "--input", in, "--output", filepath.Join(dir, fmt.Sprintf("out-%dx%d", w, run.cpus)),
			"--workers", strconv.Itoa(w), "--cpus", strconv.Itoa(run.cpus), "--batch-size", strconv.Itoa(batch),
			"--id-column", "id", "--join", "id", "-o", "json")
		if err != nil {
			return err
		}
		secs := time.Since(start).Seconds()
		var rep batchtransform.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("transform report: %w", err)
		}
		if rep.Records != n {
			return fmt.Errorf("transform with %d workers scored %d rows, the loop %d", w, rep.Records, n)
		}
		r := float64(rep.Records) / secs
		results = append(results, result{Name: fmt.Sprintf("hpcml transform, %d worker(s) × %d CPU", w, run.cpus), Workers: w, CPUs: run.cpus, Rows: rep.Records,
			Seconds: secs, RowsPerSec: r, Ratio: r / base})
	}
	fmt.Printf("%-38s %12s %10s %14s %8s\n", "run", "rows", "seconds", "rows/s", "× loop")
	for _, r := range results {
		fmt.Printf("%-38s %12d %10.2f %14.0f %8.2f\n", r.Name, r.Rows, r.Seconds, r.RowsPerSec, r.Ratio)
	}
	if outFile != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(outFile, b, 0o644)
	}
	return nil
}

// writeInput writes rows over files CSV files: id and 8 features.
func writeInput(dir string, rows, files int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for f := range files {
		fh, err := os.Create(filepath.Join(dir, fmt.Sprintf("rows-%02d.csv", f)))
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(fh, 1<<20)
		w.WriteString("id")
		for j := range features {
			fmt.Fprintf(w, ",x%d", j)
		}
		w.WriteString("\n")
		var line []byte
		for i := range rows / files {
			line = append(line[:0], 'r')
			line = strconv.AppendInt(line, int64(f*rows/files+i), 10)
			for range features {
				line = append(line, ',')
				line = strconv.AppendFloat(line, float64(rng.NormFloat64()), 'f', 4, 64)
			}
			line = append(line, '\n')
			w.Write(line)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	return nil
}

func exportModel(hidden int) ([]byte, error) {
	return servetest.MLP(1, 0.3, "softmax", features, hidden, hidden, 3)
}

// inProcessLoop scores every file in this process: lines parsed, batches
// of batch rows through serve.Model, the output (id and probabilities)
// written as CSV. It returns the seconds and the rows scored.
func inProcessLoop(ctx context.Context, model []byte, in, out string, batch int) (float64, int64, error) {
	m, err := serve.LoadONNX(model, "bench", "1")
	if err != nil {
		return 0, 0, err
	}
	inName, outName := m.Info().Inputs[0].Name, m.Info().Outputs[0].Name
	ents, err := os.ReadDir(in)
	if err != nil {
		return 0, 0, err
	}
	fo, err := os.Create(out)
	if err != nil {
		return 0, 0, err
	}
	defer fo.Close()
	w := bufio.NewWriterSize(fo, 1<<20)
	start := time.Now()
	var n int64
	ids := make([]string, 0, batch)
	x := &nn.Tensor{Shape: []int{0, features}}
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		x.Shape[0] = len(ids)
		outs, err := m.Infer(ctx, map[string]*nn.Tensor{inName: x})
		if err != nil {
			return err
		}
		y := outs[outName].Data
		var line []byte
		for i, id := range ids {
			line = append(line[:0], id...)
			for _, v := range y[i*3 : i*3+3] {
				line = append(line, ',')
				line = strconv.AppendFloat(line, float64(v), 'g', -1, 32)
			}
			w.Write(append(line, '\n'))
		}
		n += int64(len(ids))
		ids, x.Data = ids[:0], x.Data[:0]
		return nil
	}
	for _, e := range ents {
		fh, err := os.Open(filepath.Join(in, e.Name()))
		if err != nil {
			return 0, 0, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ",")
			ids = append(ids, fields[0])
			for _, f := range fields[1:] {
				v, err := strconv.ParseFloat(f, 32)
				if err != nil {
					fh.Close()
					return 0, 0, err
				}
				x.Data = append(x.Data, float32(v))
			}
			if len(ids) == batch {
				if err := flush(); err != nil {
					fh.Close()
					return 0, 0, err
				}
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return 0, 0, err
		}
	}
	if err := flush(); err != nil {
		return 0, 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, 0, err
	}
	return time.Since(start).Seconds(), n, nil
}

package table

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// genCSV writes rows of 9 float columns (6 decimals, like most
// measured data) to path; its size.
func genCSV(t testing.TB, path string, rows int) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("c1,c2,c3,c4,c5,c6,c7,c8,c9\n")
	rng := rand.New(rand.NewPCG(1, 2))
	var line []byte
	for i := 0; i < rows; i++ {
		line = line[:0]
		for j := 0; j < 9; j++ {
			if j > 0 {
				line = append(line, ',')
			}
			line = strconv.AppendFloat(line, rng.NormFloat64()*100, 'f', 6, 64)
		}
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	info, _ := os.Stat(path)
	return info.Size()
}

var benchData struct {
	once             sync.Once
	dir              string
	csv, parquet, gz string
	csvSize, pqSize  int64
	rows             int
}

// benchFiles makes the benchmark's files once per process: 1M rows of
// 9 float columns, as CSV and as Parquet (snappy, as written by
// WriteParquet).
func benchFiles(b *testing.B) {
	benchData.once.Do(func() {
		dir, err := os.MkdirTemp("", "table-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchData.dir = dir
		benchData.rows = 1 << 20
		benchData.csv = filepath.Join(dir, "f9.csv")
		benchData.csvSize = genCSV(b, benchData.csv, benchData.rows)
		benchData.parquet = filepath.Join(dir, "f9.parquet")
		r, err := Open(context.Background(), benchData.csv, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := WriteParquet(context.Background(), benchData.parquet, r, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		r.Close()
		info, _ := os.Stat(benchData.parquet)
		benchData.pqSize = info.Size()
		benchData.gz = benchData.csv + ".gz"
		if out, err := exec.Command("sh", "-c", "gzip -c -1 "+benchData.csv+" > "+benchData.gz).CombinedOutput(); err != nil {
			b.Fatalf("gzip: %v: %s", err, out)
		}
	})
	if benchData.dir == "" {
		b.Fatal("no benchmark data")
	}
}

func benchRead(b *testing.B, path string, size int64) {
	b.SetBytes(size)
	b.ReportAllocs()
	start := time.Now()
	cpu0 := cpuTime()
	rows := 0
	for i := 0; i < b.N; i++ {
		r, err := Open(context.Background(), path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			rec, err := r.Next(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows += int(rec.NumRows())
			rec.Release()
		}
		r.Close()
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	// The same per second of CPU the process used (reading, GC and all):
	// steadier than wall time on a machine others share.
	if cpu := (cpuTime() - cpu0).Seconds(); cpu > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/cpu, "MB/cpu-s")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCSVRead reads 1M rows × 9 float64 columns of CSV (~100 MB)
// on one goroutine; MB/s is of the file.
func BenchmarkCSVRead(b *testing.B) {
	benchFiles(b)
	benchRead(b, benchData.csv, benchData.csvSize)
}

// BenchmarkCSVGzipRead reads the same CSV gzipped; MB/s is of the CSV.
func BenchmarkCSVGzipRead(b *testing.B) {
	benchFiles(b)
	benchRead(b, benchData.gz, benchData.csvSize)
}

// BenchmarkParquetRead reads the same table as Parquet (snappy); MB/s is
// of the Parquet file.
func BenchmarkParquetRead(b *testing.B) {
	benchFiles(b)
	benchRead(b, benchData.parquet, benchData.pqSize)
}

// TestMain removes the benchmark's files.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchData.dir != "" {
		os.RemoveAll(benchData.dir)
	}
	os.Exit(code)
}

func BenchmarkParseFloat(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([][]byte, 4096)
	n := 0
	for i := range vals {
		vals[i] = strconv.AppendFloat(nil, rng.NormFloat64()*100, 'f', 6, 64)
		n += len(vals[i])
	}
	b.SetBytes(int64(n / len(vals)))
	b.ResetTimer()
	var sum float64
	for i := 0; i < b.N; i++ {
		v, _ := parseFloat(vals[i&4095])
		sum += v
	}
	_ = sum
}

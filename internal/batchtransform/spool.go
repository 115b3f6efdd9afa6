package batchtransform

import (
	"fmt"
	"io"
	"os"
)

// spoolMemory is how much of a part's output a worker keeps in memory;
// beyond it the output goes to a temporary file. Parts are ~1 MiB of
// input, but a compressed file or --split record CSV is one part however
// large, and its output must not have to fit in memory.
const spoolMemory = 32 << 20

// spool holds a part's output records until the part is done and its
// header (which comes first in the part's object) is known.
type spool struct {
	mem   []byte
	file  *os.File
	size  int64
	limit int // bytes kept in memory; 0 is spoolMemory
}

// append adds rendered records; they are taken from b at once.
func (s *spool) append(b []byte) error {
	s.size += int64(len(b))
	limit := s.limit
	if limit == 0 {
		limit = spoolMemory
	}
	if s.file == nil && len(s.mem)+len(b) <= limit {
		s.mem = append(s.mem, b...)
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp("", "hpcml-transform-part-*")
		if err != nil {
			return fmt.Errorf("spool a part's output: %w", err)
		}
		os.Remove(f.Name()) // gone once closed, even if this process is killed
		s.file = f
		if _, err := f.Write(s.mem); err != nil {
			return fmt.Errorf("spool a part's output: %w", err)
		}
		s.mem = s.mem[:0]
	}
	if _, err := s.file.Write(b); err != nil {
		return fmt.Errorf("spool a part's output: %w", err)
	}
	return nil
}

// writeTo copies the output to w.
func (s *spool) writeTo(w io.Writer) error {
	if s.file == nil {
		_, err := w.Write(s.mem)
		return err
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, s.file)
	return err
}

// reset empties the spool for the next part.
func (s *spool) reset() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	s.mem, s.size = s.mem[:0], 0
}

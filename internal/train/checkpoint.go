package train

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/nn"
)

// Checkpoint is everything a run needs to continue where it was: the
// loop's state (step, epoch, batch, early-stopping record), the
// weights and buffers, the best epoch's weights and the optimiser state.
type Checkpoint struct {
	State     LoopState
	Weights   []float32
	Best      []float32
	Optimizer nn.OptimizerState
}

// checkpointMagic starts every checkpoint file; the format is the magic,
// a uint32 header length, the JSON header, the float32 arrays it lists
// (little-endian), and a SHA-256 of everything before it.
const checkpointMagic = "HPCMLCK1"

type checkpointHeader struct {
	State     LoopState `json:"state"`
	OptStep   int64     `json:"optimizer_step"`
	Arrays    []string  `json:"arrays"` // names, in payload order
	Lengths   []int     `json:"lengths"`
	ParamSize int       `json:"param_size"` // values in Weights, to check against the model
}

// Encode renders c with its checksum.
func (c *Checkpoint) Encode() ([]byte, error) {
	h := checkpointHeader{State: c.State, OptStep: c.Optimizer.Step, ParamSize: len(c.Weights)}
	arrays := [][]float32{c.Weights}
	h.Arrays, h.Lengths = []string{"weights"}, []int{len(c.Weights)}
	if c.Best != nil {
		arrays = append(arrays, c.Best)
		h.Arrays, h.Lengths = append(h.Arrays, "best"), append(h.Lengths, len(c.Best))
	}
	slots := make([]string, 0, len(c.Optimizer.Slots))
	for k := range c.Optimizer.Slots {
		slots = append(slots, k)
	}
	sort.Strings(slots)
	for _, k := range slots {
		arrays = append(arrays, c.Optimizer.Slots[k])
		h.Arrays, h.Lengths = append(h.Arrays, "opt:"+k), append(h.Lengths, len(c.Optimizer.Slots[k]))
	}
	head, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString(checkpointMagic)
	binary.Write(&buf, binary.LittleEndian, uint32(len(head)))
	buf.Write(head)
	tmp := make([]byte, 4)
	for _, a := range arrays {
		for _, v := range a {
			binary.LittleEndian.PutUint32(tmp, math.Float32bits(v))
			buf.Write(tmp)
		}
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return buf.Bytes(), nil
}

// DecodeCheckpoint checks a checkpoint's checksum and reads it.
func DecodeCheckpoint(data []byte) (*Checkpoint, error) {
	if len(data) < len(checkpointMagic)+4+sha256.Size || string(data[:len(checkpointMagic)]) != checkpointMagic {
		return nil, errors.New("not a checkpoint file")
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, errors.New("checksum mismatch: the checkpoint is corrupt")
	}
	r := bytes.NewReader(body[len(checkpointMagic):])
	var n uint32
	binary.Read(r, binary.LittleEndian, &n)
	head := make([]byte, n)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, fmt.Errorf("checkpoint header: %w", err)
	}
	var h checkpointHeader
	if err := json.Unmarshal(head, &h); err != nil {
		return nil, fmt.Errorf("checkpoint header: %w", err)
	}
	if len(h.Arrays) != len(h.Lengths) {
		return nil, errors.New("checkpoint header: arrays and lengths differ")
	}
	c := &Checkpoint{State: h.State, Optimizer: nn.OptimizerState{Step: h.OptStep, Slots: map[string][]float32{}}}
	for i, name := range h.Arrays {
		if h.Lengths[i] < 0 || h.Lengths[i]*4 > r.Len() {
			return nil, fmt.Errorf("checkpoint array %s: length %d beyond the file", name, h.Lengths[i])
		}
		a := make([]float32, h.Lengths[i])
		raw := make([]byte, 4*len(a))
		io.ReadFull(r, raw)
		for j := range a {
			a[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		switch {
		case name == "weights":
			c.Weights = a
		case name == "best":
			c.Best = a
		case strings.HasPrefix(name, "opt:"):
			c.Optimizer.Slots[strings.TrimPrefix(name, "opt:")] = a
		}
	}
	if r.Len() != 0 {
		return nil, errors.New("checkpoint: data beyond its arrays")
	}
	return c, nil
}

// checkpointDir is where a run's checkpoints are under its prefix.
const checkpointDir = "checkpoints/"

// keepCheckpoints is how many recent checkpoints a run keeps: more than
// one, so that a corrupt newest one falls back to the one before.
const keepCheckpoints = 3

func checkpointKey(step int) string { return fmt.Sprintf("%sckpt-%010d.bin", checkpointDir, step) }

// saveCheckpoint writes c and prunes all but the newest few.
func saveCheckpoint(ctx context.Context, b *blob.Bucket, c *Checkpoint) error {
	data, err := c.Encode()
	if err != nil {
		return err
	}
	if err := b.WriteAll(ctx, checkpointKey(c.State.Step), data, nil); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	keys, err := listCheckpoints(ctx, b)
	if err != nil {
		return err
	}
	for len(keys) > keepCheckpoints {
		if err := b.Delete(ctx, keys[len(keys)-1]); err != nil && !blob.IsNotFound(err) {
			return fmt.Errorf("prune checkpoint: %w", err)
		}
		keys = keys[:len(keys)-1]
	}
	return nil
}

// listCheckpoints are the run's checkpoint keys, newest first.
func listCheckpoints(ctx context.Context, b *blob.Bucket) ([]string, error) {
	var keys []string
	it := b.List(&gcblob.ListOptions{Prefix: checkpointDir})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list checkpoints: %w", err)
		}
		if strings.HasSuffix(obj.Key, ".bin") {
			keys = append(keys, obj.Key)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	return keys, nil
}

// latestCheckpoint is the newest checkpoint that reads back whole and
// fits the model (as fits says), or nil; the ones it skips are reported
// through warn.
func latestCheckpoint(ctx context.Context, b *blob.Bucket, fits func(*Checkpoint) error, warn func(string)) (*Checkpoint, string, error) {
	keys, err := listCheckpoints(ctx, b)
	if err != nil {
		return nil, "", err
	}
	for _, k := range keys {
		data, err := b.ReadAll(ctx, k)
		if err != nil {
			warn(fmt.Sprintf("checkpoint %s unreadable (%v); trying the one before", k, err))
			continue
		}
		c, err := DecodeCheckpoint(data)
		if err == nil {
			err = fits(c)
		}
		if err != nil {
			warn(fmt.Sprintf("checkpoint %s skipped: %v; trying the one before", k, err))
			continue
		}
		return c, k, nil
	}
	return nil, "", nil
}

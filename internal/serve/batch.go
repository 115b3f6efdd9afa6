package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hpcml/hpcml/internal/nn"
)

// errQueueTimeout and errComputeTimeout are a request's deadline passing
// while it waited for an execution (it never ran: 503, as Triton answers a
// request whose queue timeout expired) or while the model computed it
// (504).
var (
	errQueueTimeout   = errors.New("the request timed out waiting in the queue")
	errComputeTimeout = errors.New("the request timed out while the model computed it")
	errQueueFull      = errors.New("the request queue is full")
	errStopped        = errors.New("the server is shutting down")
)

// executor runs the model: directly in the request's goroutine when
// batching is off, through the batcher when it is on. Either way at most
// cap(slots) executions run at once.
type executor struct {
	model     Model
	slots     chan struct{}
	maxBatch  int
	delay     time.Duration
	preferred []int
	timeout   time.Duration // bounds a merged batch's execution
	m         *metrics

	queue chan *job
	// holding is 1 while the batcher holds the request it took from the
	// queue and waits for an execution slot (see queued).
	holding   atomic.Int32
	stop      chan struct{}
	closeOnce sync.Once // Close may be called more than once
	stopped   sync.WaitGroup
}

// job is one request in the batcher's queue.
type job struct {
	ctx      context.Context
	inputs   map[string]*nn.Tensor
	rows     int
	enqueued time.Time
	state    atomic.Int32 // jobQueued → jobTaken by the batcher, or → jobAbandoned by the waiting request
	done     chan jobResult
}

const (
	jobQueued int32 = iota
	jobTaken
	jobAbandoned
)

type jobResult struct {
	outputs map[string]*nn.Tensor
	err     error
}

// queueCapacity bounds the requests waiting for the batcher; beyond it a
// request is refused with 503 rather than queued without limit.
const queueCapacity = 8192

// newExecutor starts the model's executor; slots, when not nil, are
// shared with other executors (a MultiServer's models).
func newExecutor(model Model, o Options, m *metrics, slots chan struct{}) *executor {
	if slots == nil {
		slots = make(chan struct{}, o.Concurrency)
	}
	e := &executor{
		model:     model,
		slots:     slots,
		maxBatch:  o.MaxBatch,
		delay:     o.MaxQueueDelay,
		preferred: slices.Clone(o.PreferredBatch),
		timeout:   o.Timeout,
		m:         m,
		stop:      make(chan struct{}),
	}
	if e.maxBatch > 1 {
		e.queue = make(chan *job, queueCapacity)
		e.stopped.Add(1)
		go e.batcher()
	}
	return e
}

// close stops the batcher once the requests already queued have run.
func (e *executor) close() {
	if e.queue != nil {
		e.closeOnce.Do(func() { close(e.stop) })
		e.stopped.Wait()
	}
}

// infer computes one request of rows rows (its inputs' first dimension).
func (e *executor) infer(ctx context.Context, inputs map[string]*nn.Tensor, rows int) (map[string]*nn.Tensor, error) {
	if e.queue == nil {
		return e.direct(ctx, inputs, rows)
	}
	j := &job{ctx: ctx, inputs: inputs, rows: rows, enqueued: time.Now(), done: make(chan jobResult, 1)}
	select {
	case e.queue <- j:
	default:
		return nil, errQueueFull
	}
	select {
	case r := <-j.done:
		return r.outputs, r.err
	case <-ctx.Done():
		if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
			return nil, errQueueTimeout
		}
		// Taken: it is running (or about to); its result is on its way,
		// but the caller's time is up.
		return nil, errComputeTimeout
	}
}

// direct runs one request by itself once an execution slot is free.
func (e *executor) direct(ctx context.Context, inputs map[string]*nn.Tensor, rows int) (map[string]*nn.Tensor, error) {
	start := time.Now()
	select {
	case e.slots <- struct{}{}:
	default:
		select {
		case e.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, errQueueTimeout
		}
	}
	defer func() { <-e.slots }()
	begin := time.Now()
	e.m.queue.Observe(begin.Sub(start).Seconds())
	outs, err := e.model.Infer(ctx, inputs)
	e.m.compute.Observe(time.Since(begin).Seconds())
	e.m.batch.Observe(float64(rows))
	if err != nil && ctx.Err() != nil {
		return nil, errComputeTimeout
	}
	return outs, err
}

// batcher gathers queued requests into batches, Triton's way: once an
// execution slot is free it takes the oldest request, then whatever else
// is queued, up to maxBatch rows. When the queue is empty and the batch
// is one of the preferred sizes (or there is no queue delay) it runs at
// once; otherwise it waits for more requests until delay has passed
// since it started the batch. A request that does not fit in what is
// left of the batch (or whose inputs differ in a non-batch dimension)
// starts the next one; a request of maxBatch rows or more runs alone.
func (e *executor) batcher() {
	defer e.stopped.Done()
	var held *job // taken from the queue but left for the next batch
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		// The first request, then a free execution slot: an idle batcher
		// holds no slot, because a MultiServer's models share theirs and
		// a slot held by one idle model would be missing for the others.
		first := held
		held = nil
		for first == nil {
			select {
			case j := <-e.queue:
				if j.state.Load() == jobQueued {
					first = j
				}
			case <-e.stop:
				e.drainQueue(nil)
				return
			}
		}
		e.holding.Store(1)
		select {
		case e.slots <- struct{}{}:
			e.holding.Store(0)
		case <-e.stop:
			e.holding.Store(0)
			e.drainQueue(first)
			return
		}
		var batch []*job
		rows := 0
		add := func(j *job) bool {
			if !j.state.CompareAndSwap(jobQueued, jobTaken) {
				return false // its request gave up
			}
			e.m.queue.Observe(time.Since(j.enqueued).Seconds())
			batch = append(batch, j)
			rows += j.rows
			return true
		}
		if !add(first) {
			<-e.slots // it gave up while waiting for the slot
			continue
		}
		waiting := false
		for rows < e.maxBatch {
			var j *job
			select {
			case j = <-e.queue:
			default:
			}
			if j == nil {
				if e.delay <= 0 || e.isPreferred(rows) {
					break
				}
				if !waiting {
					timer.Reset(e.delay)
					waiting = true
				}
				expired := false
				select {
				case j = <-e.queue:
				case <-timer.C:
					expired = true
				case <-e.stop:
					expired = true
				}
				if expired {
					waiting = false
					break
				}
			}
			if rows+j.rows > e.maxBatch || !mergeable(batch[0], j) {
				held = j
				break
			}
			add(j)
		}
		if waiting {
			timer.Stop() // since Go 1.23 a stopped timer delivers nothing stale
		}
		go e.run(batch, rows)
	}
}

// queued is how many requests wait for the batcher: in its queue, and
// the one it holds while it waits for an execution slot.
func (e *executor) queued() int { return len(e.queue) + int(e.holding.Load()) }

// drainQueue runs what is still queued when the server stops, so that a
// graceful drain loses no request, one batch at a time.
func (e *executor) drainQueue(held *job) {
	if held != nil {
		e.runOne(held)
	}
	for {
		select {
		case j := <-e.queue:
			e.runOne(j)
		default:
			return
		}
	}
}

func (e *executor) runOne(j *job) {
	if !j.state.CompareAndSwap(jobQueued, jobTaken) {
		return
	}
	e.slots <- struct{}{}
	e.run([]*job{j}, j.rows)
}

func (e *executor) isPreferred(rows int) bool { return slices.Contains(e.preferred, rows) }

// mergeable reports whether b's inputs can be concatenated to a's: the
// same inputs with the same non-batch dimensions.
func mergeable(a, b *job) bool {
	if len(a.inputs) != len(b.inputs) {
		return false
	}
	for name, ta := range a.inputs {
		tb, ok := b.inputs[name]
		if !ok || len(ta.Shape) != len(tb.Shape) || len(ta.Shape) == 0 || !slices.Equal(ta.Shape[1:], tb.Shape[1:]) {
			return false
		}
	}
	return true
}

// run executes one batch and hands each request its rows of the outputs.
// It frees the execution slot the batcher took for it.
func (e *executor) run(batch []*job, rows int) {
	defer func() { <-e.slots }()
	var outs map[string]*nn.Tensor
	var err error
	begin := time.Now()
	if len(batch) == 1 {
		outs, err = e.model.Infer(batch[0].ctx, batch[0].inputs)
	} else {
		// A merged batch serves several requests: one caller giving up
		// must not cancel the others' work, so it runs under the server's
		// timeout rather than any request's context.
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		outs, err = e.model.Infer(ctx, concatInputs(batch, rows))
		cancel()
	}
	e.m.compute.Observe(time.Since(begin).Seconds())
	e.m.batch.Observe(float64(rows))
	if err != nil {
		for _, j := range batch {
			j.done <- jobResult{err: err}
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- jobResult{outputs: outs}
		return
	}
	parts, err := splitOutputs(outs, batch, rows)
	for i, j := range batch {
		if err != nil {
			j.done <- jobResult{err: err}
		} else {
			j.done <- jobResult{outputs: parts[i]}
		}
	}
}

// concatInputs stacks the batch's inputs along the first dimension.
func concatInputs(batch []*job, rows int) map[string]*nn.Tensor {
	out := make(map[string]*nn.Tensor, len(batch[0].inputs))
	for name, t0 := range batch[0].inputs {
		shape := slices.Clone(t0.Shape)
		shape[0] = rows
		data := make([]float32, 0, nn.Volume(shape))
		for _, j := range batch {
			data = append(data, j.inputs[name].Data...)
		}
		out[name] = &nn.Tensor{Shape: shape, Data: data}
	}
	return out
}

// splitOutputs cuts each output into the requests' rows. An output whose
// first dimension is not the batch's rows cannot be split: the model does
// not batch along its first dimension, and serving it with batching on is
// a configuration mistake reported to every request of the batch.
func splitOutputs(outs map[string]*nn.Tensor, batch []*job, rows int) ([]map[string]*nn.Tensor, error) {
	parts := make([]map[string]*nn.Tensor, len(batch))
	for i := range parts {
		parts[i] = make(map[string]*nn.Tensor, len(outs))
	}
	for name, t := range outs {
		if len(t.Shape) == 0 || t.Shape[0] != rows {
			return nil, fmt.Errorf("output %q has shape %v for a batch of %d rows; the model cannot be batched (serve it with --max-batch 1)", name, t.Shape, rows)
		}
		rowLen := nn.Volume(t.Shape[1:])
		off := 0
		for i, j := range batch {
			shape := slices.Clone(t.Shape)
			shape[0] = j.rows
			parts[i][name] = &nn.Tensor{Shape: shape, Data: t.Data[off*rowLen : (off+j.rows)*rowLen : (off+j.rows)*rowLen]}
			off += j.rows
		}
	}
	return parts, nil
}

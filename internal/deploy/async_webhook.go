package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/asyncq"
)

// Notice is the JSON body a webhook receives when a request ends.
type Notice struct {
	InferenceID     string       `json:"inference_id"`
	Endpoint        string       `json:"endpoint"`
	Status          asyncq.State `json:"status"`
	OutputLocation  string       `json:"output_location,omitempty"`
	FailureLocation string       `json:"failure_location,omitempty"`
	Error           string       `json:"error,omitempty"`
	Attempts        int          `json:"attempts"`
	SubmittedAt     time.Time    `json:"submitted_at"`
	EndedAt         time.Time    `json:"ended_at"`
}

// noticeOf is r's notice.
func noticeOf(r *asyncq.Request) Notice {
	n := Notice{InferenceID: r.ID, Endpoint: r.Endpoint, Status: r.State, Error: r.Error, Attempts: r.Attempts,
		SubmittedAt: r.SubmittedAt, EndedAt: r.EndedAt}
	if r.State == asyncq.Succeeded {
		n.OutputLocation = r.Output
	} else {
		n.FailureLocation = r.Failure
	}
	return n
}

// runWebhooks delivers pending notifications with up to WebhookWorkers
// at once, until ctx ends. Its state is in the store (pending, the next
// try, the attempts), so a restart carries on where it stopped; a
// delivery cut short by a kill is made again (at least once).
func (d *Dispatcher) runWebhooks(ctx context.Context) {
	var busy atomic.Int64
	var deliveries sync.WaitGroup
	// done wakes the loop when a delivery ends; a wake-up already
	// pending is enough, so a delivery never waits to send one (it used
	// to, outside busy, and the loop then started more).
	done := make(chan struct{}, 1)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if free := d.cfg.WebhookWorkers - int(busy.Load()); free > 0 {
			now := time.Now()
			// The claim outlasts one delivery: nobody else takes it meanwhile.
			reqs, err := d.cfg.Store.ClaimWebhooks(ctx, free, now, now.Add(d.cfg.WebhookTimeout+5*time.Second))
			if err != nil && ctx.Err() == nil {
				d.log.Warn("claim webhooks", "err", err)
			}
			for _, r := range reqs {
				busy.Add(1)
				deliveries.Go(func() {
					defer func() {
						busy.Add(-1)
						select {
						case done <- struct{}{}:
						default:
						}
					}()
					d.deliver(ctx, r)
				})
			}
		}
		select {
		case <-ctx.Done():
			deliveries.Wait()
			return
		case <-t.C:
		case <-d.hooks:
		case <-done:
		}
	}
}

// deliver makes one delivery attempt of r's notice and records it.
func (d *Dispatcher) deliver(ctx context.Context, r *asyncq.Request) {
	attempt := r.WebhookAttempts + 1
	err := d.post(ctx, r)
	if ctx.Err() != nil {
		return // the claim runs out and the next start delivers it
	}
	wctx := context.WithoutCancel(ctx)
	if err == nil {
		if err := d.cfg.Store.WebhookResult(wctx, r.ID, asyncq.WebhookDelivered, attempt, "", time.Time{}); err != nil {
			d.log.Warn("record webhook", "id", r.ID, "err", err)
		}
		return
	}
	state, next := asyncq.WebhookPending, time.Now().Add(asyncq.WebhookDelay(attempt))
	if attempt >= asyncq.MaxWebhookAttempts {
		state, next = asyncq.WebhookFailed, time.Time{}
	}
	d.log.Info("webhook delivery failed", "endpoint", r.Endpoint, "id", r.ID, "attempt", attempt, "err", err, "state", state)
	msg := fmt.Sprintf("attempt %d: %v", attempt, err)
	if err := d.cfg.Store.WebhookResult(wctx, r.ID, state, attempt, msg, next); err != nil {
		d.log.Warn("record webhook", "id", r.ID, "err", err)
	}
}

func (d *Dispatcher) post(ctx context.Context, r *asyncq.Request) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.WebhookTimeout)
	defer cancel()
	body, _ := json.Marshal(noticeOf(r))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hpcml-async-webhook")
	req.Header.Set(HeaderInferenceID, r.ID)
	resp, err := d.cfg.Webhooks.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return nil
}

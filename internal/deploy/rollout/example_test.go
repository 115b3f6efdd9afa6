package rollout_test

import (
	"fmt"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/rollout"
)

// The controller's loop, on a fleet where every replica is ready at once
// and green serves well: the stages of a canary on 2 replicas.
func ExampleNext() {
	s, err := rollout.ParseStrategy("canary:10%:3s")
	if err != nil {
		panic(err)
	}
	a := rollout.DefaultAlarms()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var st rollout.State // a deployment that has not started
	obs := rollout.Observation{Now: now, Replicas: 2, BlueReady: 2}
	for !st.Phase.Terminal() {
		next, tgt := rollout.Next(s, a, st, obs)
		if rollout.Moved(st, next) {
			fmt.Printf("%s: %d%% to green, blue %d, green %d\n", next.Phase, tgt.GreenPercent, tgt.BlueReplicas, tgt.GreenReplicas)
		}
		st = next // persisted here, then the fleet is made to match tgt
		obs.Now = obs.Now.Add(time.Second)
		obs.BlueReady, obs.GreenReady = tgt.BlueReplicas, tgt.GreenReplicas
		obs.Green = rollout.Window{Requests: 100, P99: 5 * time.Millisecond}
	}
	// Output:
	// starting-green: 0% to green, blue 2, green 2
	// shifting: 10% to green, blue 2, green 2
	// finishing: 100% to green, blue 2, green 2
	// succeeded: 100% to green, blue 0, green 2
}

func ExampleDescribe() {
	s, _ := rollout.ParseStrategy("linear:50%:1m")
	fmt.Println(rollout.Describe(s, rollout.DefaultAlarms(), 1))
	// Output:
	// linear:50%:1m on 1 replica:
	//   1. start 1 green replica beside 1 blue, no traffic to green, until all are ready (at most 5m)
	//   2. 50% of traffic to green, bake 1m
	//   3. 100% of traffic to green, blue kept for an instant rollback, bake 1m
	//   4. stop blue: green (1 replica) becomes the variant
	// rolls back when, over a step with at least 20 requests, green's error rate exceeds 1% or its p99 latency exceeds 1s; or when a green replica fails
}

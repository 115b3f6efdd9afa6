// Package deploy runs real-time endpoints: a controller that reconciles
// each endpoint's desired fleets (from its spec, its running deployment
// and autoscaling) against the replica jobs that exist, and a gateway in
// the server that routes /endpoints/{name}/... to ready replicas.
//
// Replicas are `hpcml serve` jobs on the scheduler. They outlive the
// server (local jobs run under the node executor), so the controller
// keeps nothing it cannot find again: endpoints and deployments are rows
// in the store (a deployment's rollout state included), replica jobs
// carry tags naming their endpoint, variant and revision, and a replica
// announces its address in storage (endpoints/<ep>/replicas/<job>.json).
// Readiness, outstanding requests and traffic windows are in memory and
// are measured again after a restart.
//
// Asynchronous endpoints (async*.go) add a durable queue: the gateway's
// /endpoints/{name}/async-invocations stores a request (its payload in
// storage, its row in the store) before answering 202, and a Dispatcher
// sends queued requests to ready replicas, writes each answer to storage
// and only then ends the row, under a lease that a restarted server
// reconciles; webhooks go out from their own worker.
package deploy

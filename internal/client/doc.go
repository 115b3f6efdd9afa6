// Package client is the typed Go client of the hpcml REST API
// (internal/api/openapi.yaml). The CLI is built on it, and so can any other
// Go program that drives an hpcml server.
//
// Every method takes a context; calls that return a whole document are
// bounded by the client's timeout, streams (WaitJob, Logs with Follow) are
// bounded only by the caller's context.
package client

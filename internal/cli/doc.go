// Package cli is the hpcml command line. Commands talk to the server only
// through internal/client, so everything the CLI does is also possible
// over the REST API.
package cli

package server

import (
	"log/slog"
	"net/http"

	"github.com/hpcml/hpcml/internal/api"
	"github.com/hpcml/hpcml/internal/backend/local"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/sched"
	"github.com/hpcml/hpcml/internal/store"
)

// newDashboard mounts the web dashboard (wired once the dashboard package lands).
func newDashboard(st store.Store, sch *sched.Scheduler, be *local.Backend, bucket *blob.Bucket, a *api.Handler, log *slog.Logger) http.Handler {
	return http.NotFoundHandler()
}

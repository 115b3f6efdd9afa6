// Package web holds the dashboard's HTML templates and static assets,
// embedded in the binary so that the server needs no files on disk and no
// build step.
package web

import "embed"

// FS holds templates/*.html and static/*.
//
//go:embed templates static
var FS embed.FS

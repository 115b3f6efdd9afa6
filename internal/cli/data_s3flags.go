package cli

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hpcml/hpcml/internal/transfer"
)

// s3Flags give s3:// locations the settings their URLs leave out, as
// awscli's --endpoint-url, --region and --profile do; a URL's own query
// (endpoint=, region=, use_path_style=, profile=) wins, so two stores can
// still be named in one command. Credentials come from the environment
// or the profile, never from a flag (a command line is visible to every
// user of the machine).
type s3Flags struct {
	endpoint, region, profile string
	pathStyle                 bool
}

func (f *s3Flags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.endpoint, "endpoint-url", "", "S3 endpoint for s3:// locations that name none, e.g. http://127.0.0.1:7070 (default: AWS_ENDPOINT_URL, else AWS)")
	fs.StringVar(&f.region, "region", "", "S3 region for s3:// locations that name none (default: AWS_REGION or the profile's)")
	fs.StringVar(&f.profile, "profile", "", "AWS profile (credentials, region) from the AWS config files for s3:// locations")
	fs.BoolVar(&f.pathStyle, "path-style", false, "path-style S3 addressing (bucket in the path), as self-hosted S3 servers want")
}

// parse reads a location, filling in the flags' settings for S3.
func (f *s3Flags) parse(raw string) (transfer.Endpoint, error) {
	if f.endpoint != "" {
		if u, err := url.Parse(f.endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return transfer.Endpoint{}, fmt.Errorf("--endpoint-url %q: want http(s)://host[:port]", f.endpoint)
		}
	}
	withDefaults := raw
	if strings.HasPrefix(strings.ToLower(raw), "s3://") {
		u, err := url.Parse(raw)
		if err != nil {
			return transfer.Endpoint{}, fmt.Errorf("location %q: %w", raw, err)
		}
		q := u.Query()
		for key, v := range map[string]string{"endpoint": f.endpoint, "region": f.region, "profile": f.profile} {
			if v != "" && q.Get(key) == "" {
				q.Set(key, v)
			}
		}
		if f.pathStyle && q.Get("use_path_style") == "" {
			q.Set("use_path_style", "true")
		}
		u.RawQuery = q.Encode()
		withDefaults = u.String()
	}
	ep, err := transfer.ParseEndpoint(withDefaults)
	if err != nil {
		return ep, err
	}
	ep.Raw = raw // messages name the location as the user wrote it
	return ep, nil
}

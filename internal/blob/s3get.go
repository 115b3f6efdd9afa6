package blob

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/encoding/httpbinding"
)

// Getter reads whole objects of one S3 bucket with GETs signed here and
// sent straight through the SDK client's HTTP client, without the SDK's
// per-request middleware (endpoint rules, retry bookkeeping, user agent,
// response deserialisation): for a 4 KiB object that stack costs more CPU
// than the request itself — about 0.15 ms of the 0.4 ms a GET costs
// hpcml's side on loopback. It is for the many small objects of a
// transfer; everything else, and every answer but 200, goes through the
// SDK (see Get).
//
// Where to send and how to sign is taken from the SDK itself, once: a
// GET presigned for a probe key gives the object URLs' base (endpoint,
// path or virtual-host style) and the signing region. A bucket the SDK
// would sign otherwise (SigV4a, S3 Express sessions) or reach anonymously
// gets no Getter.
type Getter struct {
	base   url.URL // the object URL without the key: scheme, host, path up to "/"
	region string
	creds  aws.CredentialsProvider
	client s3.HTTPClient
	signer *v4.Signer
	// off: the server refused a signature of ours; every GET goes through
	// the SDK from then on, so that none pays twice.
	off atomic.Bool
	// pausedUntil (Unix ns): after a 5xx (throttling, an overloaded
	// server) reads go through the SDK, whose retries back off, for
	// serverPause, instead of each paying a direct GET first.
	pausedUntil atomic.Int64
}

const serverPause = time.Second

// emptySHA256 is SigV4's payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// errNoDirectGet: the Getter did not read the object (see Get).
var errNoDirectGet = errors.New("direct GET not taken")

const (
	probeKey  = "hpcml-probe"
	userAgent = "hpcml" // the SDK's requests say aws-sdk-go-v2
)

// NewGetter returns a Getter for bucket name of b, or nil if b is not an
// S3 bucket that can take one (see Getter).
func NewGetter(ctx context.Context, b *Bucket, name string) *Getter {
	if strings.HasSuffix(name, "--x-s3") {
		return nil // an S3 Express directory bucket: session auth, not SigV4
	}
	var client *s3.Client
	if !b.As(&client) {
		return nil
	}
	o := client.Options()
	if o.Credentials == nil || aws.IsCredentialsProvider(o.Credentials, aws.AnonymousCredentials{}) || o.HTTPClient == nil {
		return nil
	}
	req, err := s3.NewPresignClient(client).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(name), Key: aws.String(probeKey)})
	if err != nil || req.Method != http.MethodGet {
		return nil
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return nil
	}
	q := u.Query()
	// The credential scope is "key/date/region/service/aws4_request".
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" || len(scope) != 5 || scope[3] != "s3" {
		return nil
	}
	base, ok := strings.CutSuffix(u.EscapedPath(), "/"+probeKey)
	if !ok {
		return nil
	}
	g := &Getter{
		base:   url.URL{Scheme: u.Scheme, Host: u.Host},
		region: scope[2],
		creds:  o.Credentials,
		client: o.HTTPClient,
		// S3 takes the path as sent, not escaped a second time, as the
		// SDK's S3 client signs it.
		signer: v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }),
	}
	g.base.Path, err = url.PathUnescape(base + "/")
	if err != nil {
		return nil
	}
	g.base.RawPath = base + "/"
	return g
}

// PlainS3Key reports whether a request built outside gocloud (Get, a
// HEAD with checksum mode) names the object gocloud's would: true for a
// key gocloud leaves as it is. It escapes control characters, "../" and
// anything that looks like its own "__0x..__" escapes; invalid UTF-8,
// which it may rewrite, is left to it too.
func PlainS3Key(key string) bool {
	return utf8.ValidString(key) && !strings.Contains(key, "../") && !strings.Contains(key, "__0x") &&
		strings.IndexFunc(key, func(r rune) bool { return r < 32 }) < 0
}

// Get reads the whole object key, and returns its body and the
// response's headers (its metadata as x-amz-meta-*, and the S3 checksum
// it carries: the GET asks for it with x-amz-checksum-mode). Any answer
// but 200 (a missing object, throttling, a server error) and any failure
// to send returns an error, and the caller is to read through the SDK,
// whose retries and error mapping then apply: a second request only
// where the first failed.
func (g *Getter) Get(ctx context.Context, key string) (io.ReadCloser, http.Header, error) {
	if g.off.Load() || time.Now().UnixNano() < g.pausedUntil.Load() || !PlainS3Key(key) {
		return nil, nil, errNoDirectGet
	}
	u := g.base
	u.Path += key
	u.RawPath += httpbinding.EscapePath(key, false)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errNoDirectGet, err)
	}
	req.URL = &u // the escaping above, not Go's
	// Bytes as stored: without this Go's transport would ask for gzip and
	// inflate a gzip-encoded object.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("X-Amz-Checksum-Mode", "ENABLED")
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	creds, err := g.creds.Retrieve(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errNoDirectGet, err)
	}
	if err := g.signer.SignHTTP(ctx, creds, req, emptySHA256, "s3", g.region, time.Now().UTC()); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errNoDirectGet, err)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errNoDirectGet, err)
	}
	if resp.StatusCode != http.StatusOK {
		code := errorCode(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 500:
			g.pausedUntil.Store(time.Now().Add(serverPause).UnixNano())
		case signatureRefused(code):
			g.off.Store(true)
		}
		return nil, nil, fmt.Errorf("%w: %s %s", errNoDirectGet, resp.Status, code)
	}
	return resp.Body, resp.Header, nil
}

// signatureRefused reports whether an S3 error code says a request's
// signature (not the caller's rights to one object) was refused: direct
// GETs then stop for the bucket. The SDK corrects a skewed clock, which
// they do not.
func signatureRefused(code string) bool {
	switch code {
	case "SignatureDoesNotMatch", "AuthorizationHeaderMalformed", "IncompleteSignature",
		"InvalidAccessKeyId", "RequestTimeTooSkewed":
		return true
	}
	return false
}

// errorCode is the Code of an S3 error body ("" if there is none).
func errorCode(body io.Reader) string {
	var e struct{ Code string }
	xml.NewDecoder(io.LimitReader(body, 64<<10)).Decode(&e)
	io.Copy(io.Discard, io.LimitReader(body, 64<<10)) // the rest, so that the connection can be reused
	return e.Code
}

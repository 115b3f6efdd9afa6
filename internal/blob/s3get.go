package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// off: the server refused a signature of ours (400 or 403); every GET
	// goes through the SDK from then on, so that none pays twice.
	off atomic.Bool
}

// emptySHA256 is SigV4's payload hash of a request without a body.
var emptySHA256 = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

// errNoDirectGet: the Getter did not read the object (see Get).
var errNoDirectGet = errors.New("direct GET not taken")

const (
	probeKey  = "hpcml-probe"
	userAgent = "hpcml" // the SDK's requests say aws-sdk-go-v2
)

// NewGetter returns a Getter for bucket name of b, or nil if b is not an
// S3 bucket that can take one (see Getter).
func NewGetter(ctx context.Context, b *Bucket, name string) *Getter {
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
// key gocloud does not escape. It escapes control characters, "../",
// invalid UTF-8 and anything that looks like its own "__0x..__" escapes.
func PlainS3Key(key string) bool {
	return utf8.ValidString(key) && !strings.Contains(key, "../") && !strings.Contains(key, "__0x") &&
		strings.IndexFunc(key, func(r rune) bool { return r < 32 }) < 0
}

// Get reads the whole object key. Any answer but 200 (a missing object,
// throttling, a server error) and any failure to send returns an error
// wrapping errNoDirectGet, and the caller reads through the SDK, whose
// retries and error mapping then apply; this costs a second request only
// where the first failed.
func (g *Getter) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if g.off.Load() || !PlainS3Key(key) {
		return nil, errNoDirectGet
	}
	u := g.base
	u.Path += key
	u.RawPath += httpbinding.EscapePath(key, false)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoDirectGet, err)
	}
	req.URL = &u // the escaping above, not Go's
	// Bytes as stored: without this Go's transport would ask for gzip and
	// inflate a gzip-encoded object.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	creds, err := g.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoDirectGet, err)
	}
	if err := g.signer.SignHTTP(ctx, creds, req, emptySHA256, "s3", g.region, time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoDirectGet, err)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoDirectGet, err)
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // S3's XML error; the SDK reads its own
		resp.Body.Close()
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusForbidden {
			g.off.Store(true)
		}
		return nil, fmt.Errorf("%w: %s", errNoDirectGet, resp.Status)
	}
	return resp.Body, nil
}

// NotDirect reports whether err says that Get did not read the object
// and the SDK should.
func NotDirect(err error) bool { return errors.Is(err, errNoDirectGet) }

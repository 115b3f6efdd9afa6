package blob

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	gcaws "gocloud.dev/aws"
	gcblob "gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// openS3 opens an s3:// bucket URL. How request bodies are protected is
// decided here, for every part of hpcml that writes objects:
//
//   - Over plain HTTP the SDK signs a body by its SHA-256, so that nothing
//     on the network can change it unseen; both sides hash every byte for
//     that (client and server: about 0.9 s of CPU per GiB each on this
//     project's test machine). The SDK's own CRC on top of that would be a
//     second checksum of the same bytes: it is asked for only when
//     required (request_checksum_calculation=when_required), unless the
//     URL or AWS_REQUEST_CHECKSUM_CALCULATION says otherwise. Over HTTPS,
//     TLS guards the bytes.
//   - An S3 server on this machine (a loopback endpoint over plain HTTP)
//     gets bodies unsigned, each with a CRC32 that the server checks. A
//     loopback connection crosses no network: whoever could change the
//     bytes there could change them before they were sent. What is left
//     to guard against is corruption, which a CRC32 catches at a tenth of
//     the cost: the trade AWS's SDKs make over HTTPS (an unsigned payload
//     with a checksum). The rest of the request, object metadata (hpcml's
//     recorded SHA-256) included, stays signed. Asking for no checksums
//     (when_required, by URL or environment) keeps the bodies signed:
//     unsigned and unchecked is not offered.
func openS3(ctx context.Context, u *url.URL) (*Bucket, error) {
	q := u.Query()
	asked := q.Get(checksumParam)
	if asked == "" {
		asked = os.Getenv(checksumEnv)
	}
	noChecksums := strings.EqualFold(asked, "when_required")
	if loopbackS3(q) && !noChecksums {
		return openLoopbackS3(ctx, u)
	}
	if asked == "" {
		q.Set(checksumParam, "when_required")
		v := *u
		v.RawQuery = q.Encode()
		u = &v
	}
	return gcblob.OpenBucket(ctx, u.String())
}

const (
	checksumParam = "request_checksum_calculation" // gocloud's URL parameter
	checksumEnv   = "AWS_REQUEST_CHECKSUM_CALCULATION"
	// unsignedPayload is SigV4's payload hash of a body sent unsigned.
	unsignedPayload = "UNSIGNED-PAYLOAD"
)

// loopbackS3 reports whether an s3:// URL's endpoint is plain HTTP to a
// loopback address (localhost, 127.0.0.0/8, ::1).
func loopbackS3(q url.Values) bool {
	ep, err := url.Parse(q.Get("endpoint"))
	if err != nil || ep.Scheme != "http" {
		return false
	}
	host := ep.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// openLoopbackS3 opens an s3:// bucket on a loopback endpoint as gocloud's
// s3blob URL opener would, with unsigned, CRC32-checked bodies (see
// openS3), through a URL mux of its own so that gocloud's prefix and key
// parameters work as they do on any other bucket URL.
func openLoopbackS3(ctx context.Context, u *url.URL) (*Bucket, error) {
	mux := new(gcblob.URLMux)
	mux.RegisterBucket("s3", loopbackOpener{})
	return mux.OpenBucketURL(ctx, u)
}

// loopbackOpener is gocloud's s3blob URL opener for loopback endpoints.
// Its parameters are that opener's: its own (ssetype, kmskeyid,
// accelerate, use_path_style, s3ForcePathStyle, disable_https) are
// applied here, the rest go to gocloud's AWS config, which refuses
// unknown ones and bad values.
type loopbackOpener struct{}

func (loopbackOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*Bucket, error) {
	q := u.Query()
	var opts s3blob.Options
	var clientOpts []func(*s3.Options)
	if q.Has("ssetype") {
		v := q.Get("ssetype")
		for _, t := range types.ServerSideEncryptionAes256.Values() {
			if strings.EqualFold(string(t), v) {
				opts.EncryptionType = t
			}
		}
		if opts.EncryptionType == "" {
			return nil, fmt.Errorf("%q is not a valid value for %q", v, "ssetype")
		}
	}
	opts.KMSEncryptionID = q.Get("kmskeyid")
	for _, key := range []string{"accelerate", "disable_https", "use_path_style", "s3ForcePathStyle"} {
		if !q.Has(key) {
			continue
		}
		on, err := strconv.ParseBool(q.Get(key))
		if err != nil {
			return nil, fmt.Errorf("invalid value for %q: %w", key, err)
		}
		switch key {
		case "accelerate":
			clientOpts = append(clientOpts, func(o *s3.Options) { o.UseAccelerate = on })
		case "disable_https":
			clientOpts = append(clientOpts, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = on })
		default:
			clientOpts = append(clientOpts, func(o *s3.Options) { o.UsePathStyle = on })
		}
	}
	for _, key := range []string{"ssetype", "kmskeyid", "accelerate", "disable_https", "use_path_style", "s3ForcePathStyle"} {
		q.Del(key)
	}
	if !q.Has(checksumParam) {
		q.Set(checksumParam, "when_supported") // a CRC32 with every body
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("open bucket %v: %w", u, err)
	}
	// The bodies go unsigned only over a connection that stays on this
	// machine: no proxy, and a dial to anything but a loopback address
	// refused — whatever the endpoint's name resolves to, and whatever
	// host the bucket's name is put in.
	cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = nil
	}).WithDialerOptions(func(d *net.Dialer) {
		d.Control = loopbackOnly
	})
	cfg.APIOptions = append(cfg.APIOptions, addUnsignedBodies)
	opts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, clientOpts...), u.Host, &opts)
}

// loopbackOnly refuses a connection to an address that is not loopback
// (a net.Dialer's Control: it sees the address resolved).
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("S3 endpoint taken for this machine's resolved to %s, not a loopback address: refused", host)
	}
	return nil
}

// addUnsignedBodies marks the bodies of object writes unsigned before the
// SDK's checksum step, which then computes the CRC32 alone instead of the
// CRC32 and the SHA-256.
func addUnsignedBodies(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("hpcmlUnsignedBody",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			switch middleware.GetOperationName(ctx) {
			case "PutObject", "UploadPart":
				ctx = v4.SetPayloadHash(ctx, unsignedPayload)
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

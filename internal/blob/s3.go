package blob

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

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
// openS3).
// The query parameters are the opener's: its own (ssetype, kmskeyid,
// accelerate, use_path_style, s3ForcePathStyle, disable_https) are
// applied here, the rest go to gocloud's AWS config, which refuses
// unknown ones.
func openLoopbackS3(ctx context.Context, u *url.URL) (*Bucket, error) {
	q := u.Query()
	var opts s3blob.Options
	var clientOpts []func(*s3.Options)
	if v := q.Get("ssetype"); v != "" {
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
		v := q.Get(key)
		if v == "" {
			continue
		}
		on, err := strconv.ParseBool(v)
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
	q.Set(checksumParam, "when_supported") // a CRC32 with every body
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("open bucket %v: %w", u, err)
	}
	cfg.APIOptions = append(cfg.APIOptions, addUnsignedBodies)
	opts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, clientOpts...), u.Host, &opts)
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

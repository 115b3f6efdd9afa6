package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

// Incomplete is a multipart upload that was begun and neither completed
// nor aborted: what a killed upload (of hpcml or any client) leaves on an
// S3 store, its parts stored and billed but in no object.
type Incomplete struct {
	Key       string    `json:"key"`
	UploadID  string    `json:"upload_id"`
	Initiated time.Time `json:"initiated"`
	// Aborted: its parts were deleted (false in a dry run).
	Aborted bool `json:"aborted"`
}

// CleanupUploads aborts the incomplete multipart uploads under ep begun
// more than olderThan ago (in a dry run it only lists them). A younger
// upload may still be in progress, so it is left alone: rclone's cleanup
// keeps a day's, and so does the CLI's default.
func CleanupUploads(ctx context.Context, ep Endpoint, olderThan time.Duration, dryRun bool) ([]Incomplete, error) {
	if ep.Kind != KindS3 {
		return nil, fmt.Errorf("%s: only S3 locations hold multipart uploads", ep.Raw)
	}
	u, err := url.Parse(ep.Bucket)
	if err != nil {
		return nil, err
	}
	b, err := hblob.Open(ctx, ep.Bucket)
	if err != nil {
		return nil, hblob.Describe(err, ep.Raw)
	}
	defer b.Close()
	if ep, err = locate(ctx, b, ep); err != nil {
		return nil, err
	}
	var client *s3.Client
	if !b.As(&client) {
		return nil, fmt.Errorf("%s: the S3 client is not available", ep.Raw)
	}
	cutoff := time.Now().Add(-olderThan)
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(u.Host), Prefix: aws.String(ep.Prefix)}
	var out []Incomplete
	for {
		page, err := client.ListMultipartUploads(ctx, in)
		if err != nil {
			return out, hblob.Describe(err, ep.Raw)
		}
		for _, up := range page.Uploads {
			key := aws.ToString(up.Key)
			if ep.Single() && key != ep.Prefix {
				continue // one object: not the others its name begins
			}
			if up.Initiated == nil && olderThan > 0 {
				continue // no date: it may be running
			}
			initiated := aws.ToTime(up.Initiated)
			if !initiated.Before(cutoff) {
				continue
			}
			inc := Incomplete{Key: key, UploadID: aws.ToString(up.UploadId), Initiated: initiated}
			if !dryRun {
				_, err := client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: up.Key, UploadId: up.UploadId})
				var api smithy.APIError
				if err != nil && !(errors.As(err, &api) && api.ErrorCode() == "NoSuchUpload") { // gone meanwhile: fine
					return out, hblob.Describe(err, fmt.Sprintf("%s: abort the upload of %s", ep.Raw, key))
				}
				inc.Aborted = true
			}
			out = append(out, inc)
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		if aws.ToString(page.NextKeyMarker) == aws.ToString(in.KeyMarker) && aws.ToString(page.NextUploadIdMarker) == aws.ToString(in.UploadIdMarker) {
			// A server that says "more" without moving on would be asked
			// for the same page for ever.
			return out, fmt.Errorf("%s: the server's list of uploads does not advance (truncated at %q)", ep.Raw, aws.ToString(page.NextKeyMarker))
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

package blob

import (
	"errors"
	"strings"
	"testing"
)

// The S3 errors as the AWS SDK words them (the real ones are met in the
// transfer tests against versitygw); here, that the words decide alone.
func TestDescribeAndRefused(t *testing.T) {
	sdk := func(code string) error {
		return errors.New("operation error S3: ListObjectsV2, https response error StatusCode: 404, api error " + code + ": whatever")
	}
	for _, c := range []struct {
		err     error
		want    string
		refused bool
	}{
		{sdk("NoSuchBucket"), "s3://b: the bucket does not exist: ", true},
		{sdk("SignatureDoesNotMatch"), "s3://b: the credentials were refused", true},
		{sdk("XAdminUserNotFound"), "s3://b: the credentials were refused", true},
		{sdk("AccessDenied"), "s3://b: permission denied (check the credentials", true},
		{errors.New("open /data/x: permission denied"), "s3://b: permission denied: open", false},
		{sdk("SlowDown"), "s3://b: operation error", false},
		{errors.New("get credentials: failed to refresh cached credentials, no EC2 IMDS role found"), "s3://b: no S3 credentials found", false},
		{errors.New("write /x: no space left on device"), "s3://b: the disk is full: ", false},
		// A key that merely holds a code's name is not that error.
		{errors.New("open s3://b/NoSuchBucket/AccessDenied.txt: timeout"), "s3://b: open s3://b/NoSuchBucket", false},
	} {
		got := Describe(c.err, "s3://b")
		if !strings.HasPrefix(got.Error(), c.want) || !errors.Is(got, c.err) {
			t.Errorf("Describe(%q) = %q, want it to begin %q and wrap the error", c.err, got, c.want)
		}
		if Refused(c.err) != c.refused {
			t.Errorf("Refused(%q) = %v, want %v", c.err, !c.refused, c.refused)
		}
	}
}

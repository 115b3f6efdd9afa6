package blob

import (
	"fmt"
	"strings"

	"gocloud.dev/gcerrors"
)

// Describe turns a storage error into a message that names the problem
// first (no credentials, no such bucket, credentials refused, permission
// denied, a full disk, not found), then what was being done (what), then
// the store's own words.
func Describe(err error, what string) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "failed to refresh cached credentials"), strings.Contains(msg, "no EC2 IMDS role found"):
		// The SDK tried every source of credentials and ended at the EC2
		// instance metadata, which it names instead of the problem.
		return fmt.Errorf("%s: no S3 credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE): %w", what, err)
	case hasCode(msg, "NoSuchBucket"):
		return fmt.Errorf("%s: the bucket does not exist: %w", what, err)
	case hasCode(msg, "SignatureDoesNotMatch", "InvalidAccessKeyId", "XAdminUserNotFound"):
		return fmt.Errorf("%s: the credentials were refused (check the access key and secret: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the profile's): %w", what, err)
	case gcerrors.Code(err) == gcerrors.PermissionDenied, hasCode(msg, "AccessDenied"):
		// A 403 without a code (a HEAD's answer) is also what a wrong
		// secret key gets.
		return fmt.Errorf("%s: permission denied (check the credentials, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile's, and what they may access): %w", what, err)
	case strings.Contains(msg, "permission denied"):
		return fmt.Errorf("%s: permission denied: %w", what, err)
	case strings.Contains(msg, "no space left on device"):
		return fmt.Errorf("%s: the disk is full: %w", what, err)
	case gcerrors.Code(err) == gcerrors.NotFound:
		return fmt.Errorf("%s: not found: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Refused reports whether an object store refused a request for good: a
// 401 or 403 (gocloud's PermissionDenied), or an S3 error code that says
// the request will never be allowed as it is (a missing bucket, unknown
// or refused credentials, denied access). Trying again cannot help.
func Refused(err error) bool {
	return gcerrors.Code(err) == gcerrors.PermissionDenied ||
		hasCode(err.Error(), "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "XAdminUserNotFound")
}

// hasCode reports whether msg carries one of the S3 error codes, matched
// as the AWS SDK words them ("api error CODE:") so that a key merely
// containing such a word does not match. XAdminUserNotFound is
// versitygw's code for an unknown access key.
func hasCode(msg string, codes ...string) bool {
	for _, code := range codes {
		if strings.Contains(msg, "api error "+code+":") {
			return true
		}
	}
	return false
}

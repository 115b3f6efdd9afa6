package blob

// S3's multipart limits: parts of 5 MiB to 5 GiB, at most 10,000 parts.
const (
	MinPart     = 5 << 20
	MaxPart     = 5 << 30
	MaxParts    = 10000
	DefaultPart = 16 << 20
)

// PartSize is the multipart part size for an object of size bytes: the
// default, grown (in whole 5 MiB steps) so that the object fits in 10,000
// parts.
func PartSize(size int64) int64 {
	p := int64(DefaultPart)
	if need := (size + MaxParts - 1) / MaxParts; need > p {
		p = (need + MinPart - 1) / MinPart * MinPart
	}
	return min(max(p, MinPart), MaxPart)
}

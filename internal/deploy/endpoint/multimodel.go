package endpoint

import "fmt"

// MaxModelCacheBytes bounds a replica's model cache (1 TiB): a larger
// number is a typo, not a machine.
const MaxModelCacheBytes = 1 << 40

// MaxFilterLen bounds the text of a model filter.
const MaxFilterLen = 4096

// MultiModel makes an endpoint serve many registered models at once
// (SageMaker's multi-model endpoints): each replica runs
// `hpcml serve --multi-model` over the registry's storage, loading a
// model on its first request into a cache of CacheBytes, and the gateway
// sends a model's requests to the replica that has it (rendezvous
// hashing), after checking the target model against Models and the
// registry.
type MultiModel struct {
	// Models is the filter of the models served: NAME, NAME:VERSION or
	// PREFIX*, comma-separated (see ParseFilter). The gateway enforces
	// it, so changing it restarts no replica.
	Models string `json:"models"`
	// CacheBytes is each replica's model cache (hpcml serve
	// --model-cache-bytes); 0 is the replica's default, half its memory.
	CacheBytes int64 `json:"cache_bytes,omitempty"`
}

// Filter is Models parsed; call it on a checked spec.
func (m *MultiModel) Filter() Filter {
	f, _ := ParseFilter(m.Models)
	return f
}

// checkMultiModel is Spec.Check's part for multi-model endpoints: one
// variant, which names no model (the request does), a valid filter and
// cache size, and not asynchronous too.
func (s *Spec) checkMultiModel() error {
	m := s.MultiModel
	if m == nil {
		return nil
	}
	if s.Async != nil {
		return fieldErr("multi_model", "an endpoint is either async or multi-model")
	}
	if len(m.Models) > MaxFilterLen {
		return fieldErr("multi_model.models", "the filter is longer than %d characters (use PREFIX*)", MaxFilterLen)
	}
	if _, err := ParseFilter(m.Models); err != nil {
		return fieldErr("multi_model.models", "%v", err)
	}
	if m.CacheBytes < 0 || m.CacheBytes > MaxModelCacheBytes {
		return fieldErr("multi_model.cache_bytes", "want 0 (the replica's default) up to %d bytes", int64(MaxModelCacheBytes))
	}
	if len(s.Variants) != 1 {
		return fieldErr("variants", "a multi-model endpoint has exactly one variant (the request names the model)")
	}
	return nil
}

// checkVariant checks a variant of s: a multi-model endpoint's names no
// model, and the rest is checked as any variant's.
func (s *Spec) checkVariant(v *Variant, prefix string) error {
	if s.MultiModel == nil {
		return v.Check(prefix)
	}
	if v.Model != "" || v.Version != 0 || v.Ref != "" {
		return fieldErr(prefix+".model", "a multi-model endpoint's variant names no model: the request does, among --models")
	}
	// The checks of a variant that are not about its model, on a copy
	// that has one; the defaults it fills are carried back.
	c := *v
	c.Model, c.Version = "multi-model", 1
	err := c.Check(prefix)
	c.Model, c.Version = "", 0
	*v = c
	return err
}

// ModelText is what variant v of s serves, for display: its model
// version, or a multi-model endpoint's filter.
func (s *Spec) ModelText(v Variant) string {
	if s.MultiModel != nil {
		return "models " + s.MultiModel.Models
	}
	return fmt.Sprintf("%s:%d", v.Model, v.Version)
}

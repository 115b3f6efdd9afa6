package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

// multiModelFlags are endpoint create's multi-model flags.
type multiModelFlags struct {
	multi              bool
	models, cacheBytes string
}

func (m *multiModelFlags) add(fl *pflag.FlagSet) {
	fl.BoolVar(&m.multi, "multi-model", false, "serve many registered models; each request names its model (needs --models)")
	fl.StringVar(&m.models, "models", "", "with --multi-model: the models served, NAME, NAME:VERSION or PREFIX* (comma-separated)")
	fl.StringVar(&m.cacheBytes, "model-cache-bytes", "", "with --multi-model: each replica's model cache (K, M, G; default half its memory)")
}

// spec is the MultiModel block of the create request (nil without
// --multi-model), refusing flags that mix it with one model.
func (m *multiModelFlags) spec(fl *pflag.FlagSet, model string, variants []string) (*endpoint.MultiModel, error) {
	if !m.multi {
		if m.models != "" || m.cacheBytes != "" {
			return nil, errors.New("--models and --model-cache-bytes need --multi-model")
		}
		return nil, nil
	}
	switch {
	case model != "" || len(variants) > 0:
		return nil, errors.New("--multi-model serves the models --models names: it takes no --model or --variant")
	case m.models == "":
		return nil, errors.New("--multi-model needs --models: NAME, NAME:VERSION or PREFIX* (comma-separated; '*' is every model)")
	case fl.Changed("async"):
		return nil, errors.New("an endpoint is either async or multi-model")
	}
	if _, err := endpoint.ParseFilter(m.models); err != nil {
		return nil, fmt.Errorf("--models: %w", err)
	}
	mm := &endpoint.MultiModel{Models: m.models}
	if m.cacheBytes != "" {
		n, err := parseBytes(m.cacheBytes)
		if err != nil {
			return nil, fmt.Errorf("--model-cache-bytes: %w", err)
		}
		if n <= 0 {
			return nil, fmt.Errorf("--model-cache-bytes %s must be more than 0", m.cacheBytes)
		}
		mm.CacheBytes = n
	}
	return mm, nil
}

func printMultiModelInvoke(w io.Writer, base string, st *deploy.Status) {
	fmt.Fprintf(w, "Invoke a model at %s/endpoints/%s/invocations with %s: NAME[:VERSION|:ALIAS],\n"+
		"or at %s/endpoints/%s/v2/models/NAME/infer (hpcml endpoint invoke %s --target-model NAME ...)\n",
		base, st.Name, deploy.HeaderTargetModel, base, st.Name, st.Name)
}

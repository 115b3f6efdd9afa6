package store

import (
	"errors"
	"testing"
)

// Versions are numbered per model, a taken number is refused, aliases
// point only at existing versions and move, and list/get agree.
func TestModelVersionsAndAliases(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	add := func(model string, want int) {
		t.Helper()
		n, err := s.NextModelVersion(ctx, model)
		if err != nil || n != want {
			t.Fatalf("next version of %s: %d %v, want %d", model, n, err, want)
		}
		if err := s.AddModelVersion(ctx, &ModelVersionRow{Model: model, Version: n, SHA256: "ab", Size: 3, Record: []byte(`{"x":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	add("mlp", 1)
	add("mlp", 2)
	add("cnn", 1)
	err := s.AddModelVersion(ctx, &ModelVersionRow{Model: "mlp", Version: 2, SHA256: "cd", Record: []byte(`{}`)})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second insert of mlp v2: %v, want ErrExists", err)
	}
	if v, err := s.GetModelVersion(ctx, "mlp", 2); err != nil || v.SHA256 != "ab" || string(v.Record) != `{"x":1}` {
		t.Fatalf("mlp v2 after refused insert: %+v %v", v, err)
	}
	if _, err := s.GetModelVersion(ctx, "mlp", 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("mlp v9: %v", err)
	}
	if _, err := s.SetModelAlias(ctx, "mlp", "production", 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("alias to a missing version: %v", err)
	}
	if prev, err := s.SetModelAlias(ctx, "mlp", "production", 1); err != nil || prev != 0 {
		t.Fatalf("set alias: %d %v", prev, err)
	}
	if prev, err := s.SetModelAlias(ctx, "mlp", "production", 2); err != nil || prev != 1 {
		t.Fatalf("move alias: %d %v", prev, err)
	}
	if v, err := s.ModelAlias(ctx, "mlp", "production"); err != nil || v != 2 {
		t.Fatalf("alias: %d %v", v, err)
	}
	if _, err := s.ModelAlias(ctx, "cnn", "production"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("alias of another model: %v", err)
	}
	m, err := s.GetModel(ctx, "mlp")
	if err != nil || m.Count != 2 || len(m.Versions) != 2 || m.Versions[0].Version != 2 || m.Latest.Version != 2 || m.Aliases["production"] != 2 {
		t.Fatalf("get model: %+v %v", m, err)
	}
	list, err := s.ListModels(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "cnn" || list[1].Latest.Version != 2 || list[1].Count != 2 || list[1].Aliases["production"] != 2 || len(list[0].Aliases) != 0 {
		t.Fatalf("list models: %+v %v", list, err)
	}
	if err := s.DeleteModelAlias(ctx, "mlp", "production"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteModelAlias(ctx, "mlp", "production"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.GetModel(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown model: %v", err)
	}
}

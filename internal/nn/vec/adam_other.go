//go:build !amd64

package vec

// Adam is the Adam update of adamGo.
func Adam(w, g, m, v []float32, k *AdamCoef) { adamGo(w, g, m, v, k) }

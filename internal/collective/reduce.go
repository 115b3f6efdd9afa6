package collective

import "fmt"

// Op is a reduction.
type Op uint8

const (
	// Sum adds the ranks' values.
	Sum Op = iota
	// Mean adds the ranks' values and divides by the world size (the
	// average of gradients in data-parallel training). The division is
	// done once, by the rank that owns the element, before the result is
	// copied to the others, so every rank holds the same bits.
	Mean
)

func (o Op) String() string {
	switch o {
	case Sum:
		return "sum"
	case Mean:
		return "mean"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

func (o Op) valid() bool { return o == Sum || o == Mean }

// reducers are the inner loops of the reductions, chosen for the CPU
// (bestReducers).
type reducers struct {
	add    func(dst, src []float32)
	addDiv func(dst, src []float32, d float32)
}

// addTo computes dst[i] += src[i]. It is the inner loop of every
// reduction, run on every byte received; unrolled by 8 with the bounds
// checks hoisted so the compiler emits straight loads and adds.
func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for len(dst) >= 8 {
		d, s := dst[:8:8], src[:8:8]
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
		d[4] += s[4]
		d[5] += s[5]
		d[6] += s[6]
		d[7] += s[7]
		dst, src = dst[8:], src[8:]
	}
	for i := range dst {
		dst[i] += src[i]
	}
}

// addDivTo computes dst[i] = (dst[i] + src[i]) / n: the last step of a
// Mean, fused so the owned chunk is read once. Division, not
// multiplication by 1/n, so the mean is the correctly rounded quotient of
// the sum (x*(1/3) and x/3 differ in the last bit for some x).
func addDivTo(dst, src []float32, n float32) {
	src = src[:len(dst)]
	for len(dst) >= 4 {
		d, s := dst[:4:4], src[:4:4]
		d[0] = (d[0] + s[0]) / n
		d[1] = (d[1] + s[1]) / n
		d[2] = (d[2] + s[2]) / n
		d[3] = (d[3] + s[3]) / n
		dst, src = dst[4:], src[4:]
	}
	for i := range dst {
		dst[i] = (dst[i] + src[i]) / n
	}
}

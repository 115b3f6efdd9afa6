//go:build amd64

package collective

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func addAVX2(dst, src *float32, n int)

//go:noescape
func addDivAVX2(dst, src *float32, n int, d float32)

// bestReducers returns the AVX2 loops where the CPU has them (8 lanes at
// a time: the reduction then costs less than the copies the network
// needs), the Go loops elsewhere. Both round identically, so ranks on
// different CPUs still agree bit for bit.
func bestReducers() reducers {
	if !cpu.X86.HasAVX2 {
		return reducers{add: addTo, addDiv: addDivTo}
	}
	return reducers{
		add: func(dst, src []float32) {
			src = src[:len(dst)]
			m := len(dst) &^ 7
			if m > 0 {
				addAVX2(unsafe.SliceData(dst), unsafe.SliceData(src), m)
			}
			addTo(dst[m:], src[m:])
		},
		addDiv: func(dst, src []float32, d float32) {
			src = src[:len(dst)]
			m := len(dst) &^ 7
			if m > 0 {
				addDivAVX2(unsafe.SliceData(dst), unsafe.SliceData(src), m, d)
			}
			addDivTo(dst[m:], src[m:], d)
		},
	}
}

//go:build !amd64

package gemm

func bestKernel() kernelFunc { return kernelGo }

func hasAVX2Kernel() bool { return false }

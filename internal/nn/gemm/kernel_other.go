//go:build !amd64

package gemm

func bestKernel() kernelFunc { return kernelGo }

func bestPanel() panelFunc { return panelGo }

func hasAVX2Kernel() bool { return false }

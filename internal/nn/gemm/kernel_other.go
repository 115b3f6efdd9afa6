//go:build !amd64

package gemm

func bestKernel() kernelFunc { return kernelGo }

func bestColumn() columnFunc { return columnGo }

func bestPack() packer { return packer{rows: rowsGo, panel: panelGo} }

func hasAVX2Kernel() bool { return false }

//go:build race

package onnx

// raceDetector: sync.Pool drops items at random under the race detector.
const raceDetector = true

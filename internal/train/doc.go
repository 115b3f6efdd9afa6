// Package train is hpcml's training driver: it loads a table or IDX
// images into memory, prepares them (validation split, standardisation,
// class weights), builds a built-in algorithm's network (linear, mlp,
// cnn), runs the training loop with checkpoints, live metrics, early
// stopping and divergence detection, evaluates the result and exports it
// as ONNX. The same code runs inside a job (hpcml train) and here
// (hpcml train --here).
package train

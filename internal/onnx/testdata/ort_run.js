// Runs ONNX models with onnxruntime (npm onnxruntime-node) for the Go
// tests of internal/onnx, which compare its outputs with the engine's.
//
// Usage: node ort_run.js < jobs.json
//
// jobs.json is [{"model": "a.onnx", "inputs": {"input": {"shape": [2, 3],
// "data": [...]}}}, ...]; float32 inputs, data row-major. Prints
// {"version": "<onnxruntime version>", "results": [{"output": {"shape":
// [...], "data": [...]}}, ...]} with one result per job, in order.
// onnxruntime-node is looked up in $HPCML_TEST_NODE_DIR/node_modules
// (default /var/cache/hpcml-test-node), where scripts/test-deps.sh puts it.
'use strict';

const fs = require('fs');
const path = require('path');

const dir = process.env.HPCML_TEST_NODE_DIR || '/var/cache/hpcml-test-node';
const ort = require(path.join(dir, 'node_modules', 'onnxruntime-node'));

async function main() {
  const jobs = JSON.parse(fs.readFileSync(0, 'utf8'));
  const results = [];
  for (const job of jobs) {
    // One thread: the tests compare numbers, not speed, and run beside others.
    const session = await ort.InferenceSession.create(job.model, {intraOpNumThreads: 1, interOpNumThreads: 1});
    const feeds = {};
    for (const [name, t] of Object.entries(job.inputs)) {
      feeds[name] = new ort.Tensor('float32', Float32Array.from(t.data), t.shape);
    }
    const outs = await session.run(feeds);
    const res = {};
    for (const [name, t] of Object.entries(outs)) {
      res[name] = {shape: t.dims.map(Number), data: Array.from(t.data)};
    }
    results.push(res);
  }
  process.stdout.write(JSON.stringify({version: ort.env.versions.node, results}));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});

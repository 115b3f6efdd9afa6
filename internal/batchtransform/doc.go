// Package batchtransform is offline scoring of a whole dataset with a
// registered model (`hpcml transform`, SageMaker's Batch Transform): the
// input — a CSV, JSON Lines or Parquet file, or a prefix of many — is cut
// into parts of a few MB, N workers score the parts they own in
// mini-batches with the inference server's runtime (serve.Model), and a
// commit assembles the parts' outputs in input order, one output file per
// input file, with an error file and a report.
//
// Everything the run needs lives under the output prefix:
//
//	<output>/_hpcml/plan.json          the plan: files, parts, model, settings, hash
//	<output>/_hpcml/parts/NNNNNN       one object per scored part, written whole
//	<output>/_hpcml/workers/NNN.json   what each worker's last attempt did
//	<output>/<input-name>.out          the outputs (after the commit)
//	<output>/_errors.jsonl             the records that failed: file, record, reason
//	<output>/_report.json              the report
//
// A part's object is written in one piece (a rename of a finished local
// file, a single PUT to S3), so a killed worker never leaves a part that
// reads as done; a rerun of a worker skips every part whose object
// exists. The commit removes _hpcml/ once the outputs and the report are
// in place.
package batchtransform

#!/usr/bin/python3
"""Checks ONNX files with the reference checker of the onnx package.

Usage: /usr/bin/python3 check_model.py FILE.onnx...

Runs onnx.checker.check_model(model, full_check=True) on each file, which
also runs strict shape inference, and prints "ok FILE" or "FAIL FILE: why"
per file. Exits 1 when any file fails. Debian's python3-onnx (1.12) is
enough; the Go tests in internal/onnx run it on every model they export.
"""
import sys

import onnx

failed = False
for path in sys.argv[1:]:
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        print("ok", path)
    except Exception as e:  # report every file, not only the first bad one
        failed = True
        print("FAIL %s: %s" % (path, str(e).strip().replace("\n", " ")))
sys.exit(1 if failed else 0)

#!/usr/bin/python3
"""ONNX's own node test cases for Conv and ConvTranspose, run through the `tdconv` command.

Run as:  /usr/bin/python3 onnx_node_test.py PATH_TO_TDCONV [--keep DIR]

The cases come from onnx.backend.test.case.node.conv / .convtranspose (ONNX 1.12 as packaged by Debian): their
`expect(node, inputs=[...], outputs=[...], name=...)` is replaced by a function that records the case, and every
export* static method of the test classes is called again (after np.random.seed(0), as ONNX's own exporter does).
Every recorded case is run three times: as ONNX stores it (float32, channels_first input, W in ONNX layout == torch
layout), transposed to --layout channels_last --weight-layout tf, and cast to float64; the output must have the
input's dtype and match the expected output (rtol 1e-5, atol 1e-5).  A case whose attributes cannot be expressed as tdconv options is a failure, not a skip.

Attribute mapping (per spatial dim: in = input size, s = stride, d = dilation, k_eff = d * (k - 1) + 1,
full = (in - 1) * s + k_eff, op = output_padding):

Conv
  strides/dilations/group -> --stride/--dilation/--groups; kernel_shape must equal W's spatial shape
  auto_pad NOTSET (or absent): pads [b1.., e1..] -> --padding b1:e1,b2:e2,...
  auto_pad VALID -> --padding valid; SAME_UPPER / SAME_LOWER -> --padding same_upper / same_lower
ConvTranspose (ONNX 1.12 ConvTranspose doc string and attribute docs):
  NOTSET, no output_shape:  --padding b1:e1,...  (+ --output-padding op)
  VALID:  pads are 0, output = full + op  -> --padding 0 (+ --output-padding op).  (tdconv's 'valid' is
          TensorFlow's, which differs from ONNX's VALID when k_eff < s, so the numeric form is used.)
  SAME_UPPER / SAME_LOWER, op == 0:  --padding same_upper / same_lower (+ --output-size output_shape)
  output_shape given, NOTSET, op == 0:  the doc's "Else" branch (pads[start] = total - total/2), i.e. SAME_LOWER's
          split -> --padding same_lower --output-size output_shape
  anything else with op != 0 (output_padding with auto_pad or with output_shape): the window ONNX selects is
          computed here and passed as numeric padding: out = output_shape or (SAME_*: in * s),
          total = (in - 1) * s + op + k_eff - out; start = total // 2 (SAME_UPPER) or total - total // 2 (otherwise);
          a negative total means no crop at the start and zeros at the end (as ONNX's node tests expect, e.g.
          test_convtranspose_output_shape); then --padding start:max(full - start - out, 0) and
          --output-padding max(out - (full - start), 0).
"""

import argparse
import importlib
import inspect
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnx.backend.test.case.node as node_pkg
from onnx import helper

TIMEOUT_S = 60
MODULES = ["onnx.backend.test.case.node.conv", "onnx.backend.test.case.node.convtranspose"]


class CannotExpress(Exception):
    pass


# ------------------------------------------------------------------------------------------- case collection

def collect_cases():
    captured = []

    def capture(node, inputs, outputs, name, **kwargs):
        captured.append({"node": node, "inputs": [np.array(a) for a in inputs],
                         "outputs": [np.array(a) for a in outputs], "name": name})

    # Exporting happens once at import time (ONNX's metaclass calls every export* method when the class is created);
    # record nothing there, then call the exports again with `expect` patched in each module.
    node_pkg.expect = lambda *a, **k: None
    mods = [importlib.import_module(m) for m in MODULES]
    from onnx.backend.test.case.base import Base
    for mod in mods:
        mod.expect = capture
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if not issubclass(cls, Base) or cls is Base or cls.__module__ != mod.__name__:
                continue
            for attr in sorted(vars(cls)):
                if attr.startswith("export") and isinstance(vars(cls)[attr], staticmethod):
                    np.random.seed(0)
                    getattr(cls, attr)()
    return captured


# ------------------------------------------------------------------------------------------- attribute mapping

def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def ints(v):
    return [int(x) for x in v]


def to_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def map_case(case):
    """Returns (subcommand, list of options without files, has_bias)."""
    node = case["node"]
    if node.op_type not in ("Conv", "ConvTranspose"):
        raise CannotExpress("op_type %s" % node.op_type)
    a = attrs_of(node)
    x, w = case["inputs"][0], case["inputs"][1]
    has_bias = len(case["inputs"]) > 2 and len(node.input) > 2 and node.input[2] != ""
    nd = x.ndim - 2
    known = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", "output_padding", "output_shape"}
    if node.op_type == "Conv":
        known -= {"output_padding", "output_shape"}
    unknown = set(a) - known
    if unknown:
        raise CannotExpress("attributes %s" % sorted(unknown))
    k = list(w.shape[2:])
    if "kernel_shape" in a and ints(a["kernel_shape"]) != k:
        raise CannotExpress("kernel_shape %s differs from W's %s" % (ints(a["kernel_shape"]), k))
    s = ints(a.get("strides", [1] * nd))
    d = ints(a.get("dilations", [1] * nd))
    g = int(a.get("group", 1))
    auto_pad = to_str(a.get("auto_pad", "NOTSET"))
    pads = ints(a.get("pads", [0] * (2 * nd)))
    opts = ["--stride", ",".join(map(str, s)), "--dilation", ",".join(map(str, d)), "--groups", str(g)]

    def numeric(begins, ends):
        return ",".join("%d:%d" % (b, e) for b, e in zip(begins, ends))

    if node.op_type == "Conv":
        if auto_pad == "NOTSET":
            opts += ["--padding", numeric(pads[:nd], pads[nd:])]
        elif auto_pad in ("VALID", "SAME_UPPER", "SAME_LOWER"):
            opts += ["--padding", auto_pad.lower()]
        else:
            raise CannotExpress("auto_pad %s" % auto_pad)
        return "conv", opts, has_bias

    op = ints(a.get("output_padding", [0] * nd))
    out_shape = ints(a["output_shape"]) if "output_shape" in a else None
    if out_shape is not None and len(out_shape) == nd + 2:
        out_shape = out_shape[2:]
    ke = [d[i] * (k[i] - 1) + 1 for i in range(nd)]
    full = [(x.shape[2 + i] - 1) * s[i] + ke[i] for i in range(nd)]
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise CannotExpress("auto_pad %s" % auto_pad)
    if out_shape is None and auto_pad in ("NOTSET", "VALID"):
        begins, ends = (pads[:nd], pads[nd:]) if auto_pad == "NOTSET" else ([0] * nd, [0] * nd)
        opts += ["--padding", numeric(begins, ends)]
        if any(op):
            opts += ["--output-padding", ",".join(map(str, op))]
        return "conv-transpose", opts, has_bias
    if not any(op) and auto_pad != "VALID":
        kw = auto_pad.lower() if auto_pad != "NOTSET" else "same_lower"  # NOTSET + output_shape: the "Else" split
        opts += ["--padding", kw]
        if out_shape is not None:
            opts += ["--output-size", ",".join(map(str, out_shape))]
        return "conv-transpose", opts, has_bias
    # output_padding together with auto_pad or output_shape: compute ONNX's window and pass it numerically.
    out = out_shape if out_shape is not None else [x.shape[2 + i] * s[i] for i in range(nd)]
    begins, ends, ext = [], [], []
    for i in range(nd):
        total = (x.shape[2 + i] - 1) * s[i] + op[i] + ke[i] - out[i]
        if total < 0:
            start = 0
        else:
            start = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        begins.append(start)
        ends.append(max(full[i] - start - out[i], 0))
        ext.append(max(out[i] - (full[i] - start), 0))
        if ext[i] >= max(s[i], d[i]):
            raise CannotExpress("dim %d: output extends %d past the full output, tdconv allows < max(stride, "
                                "dilation)" % (i, ext[i]))
    opts += ["--padding", numeric(begins, ends)]
    if any(ext):
        opts += ["--output-padding", ",".join(map(str, ext))]
    return "conv-transpose", opts, has_bias


# ------------------------------------------------------------------------------------------- running

def run_variant(tdconv, workdir, case, variant):
    """variant: 'channels_first/torch', 'channels_last/tf' or 'float64' (channels_first, inputs and expected
    output cast to float64). Returns (ok, message, command)."""
    name = case["name"]
    cmd = None
    try:
        sub, opts, has_bias = map_case(case)
    except CannotExpress as e:
        return False, "cannot be expressed as tdconv options: %s" % e, None
    x, w = case["inputs"][0], case["inputs"][1]
    nd = x.ndim - 2
    expected = case["outputs"][0]
    if variant == "float64":
        x, w, expected = x.astype("<f8"), w.astype("<f8"), expected.astype("<f8")
    if variant == "channels_last/tf":
        x = np.transpose(x, [0] + list(range(2, nd + 2)) + [1])
        w = np.transpose(w, list(range(2, nd + 2)) + [1, 0])
        opts = opts + ["--layout", "channels_last", "--weight-layout", "tf"]
    tag = "%s_%s" % (name, variant.replace("/", "_"))
    files = {k: os.path.join(workdir, "%s_%s.npy" % (tag, k)) for k in ("X", "W", "B", "Y")}
    np.save(files["X"], np.ascontiguousarray(x))
    np.save(files["W"], np.ascontiguousarray(w))
    cmd = [tdconv, sub, "--input", files["X"], "--weight", files["W"], "--output", files["Y"]]
    if has_bias:
        np.save(files["B"], np.ascontiguousarray(case["inputs"][2].astype(x.dtype)))
        cmd += ["--bias", files["B"]]
    cmd += opts
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, "timed out after %d s" % TIMEOUT_S, cmd
    if r.returncode != 0:
        return False, "exit status %d, stderr: %s" % (r.returncode, r.stderr.decode(errors="replace").strip()), cmd
    try:
        y = np.load(files["Y"])
    except Exception as e:  # noqa: BLE001
        return False, "cannot read output: %s" % e, cmd
    if variant == "channels_last/tf" and y.ndim == nd + 2:
        y = np.transpose(y, [0, nd + 1] + list(range(1, nd + 1)))
    if y.dtype != expected.dtype:
        return False, "output dtype %s, expected %s" % (y.dtype, expected.dtype), cmd
    if y.shape != expected.shape:
        return False, "output shape %s, expected %s (channels_first view)" % (y.shape, expected.shape), cmd
    if not np.allclose(y, expected, rtol=1e-5, atol=1e-5):
        diff = np.abs(y.astype(np.float64) - expected.astype(np.float64))
        idx = np.unravel_index(int(np.argmax(diff)), diff.shape)
        return False, "values differ: max abs error %.3g at %s (got %r, expected %r)" % (
            float(diff[idx]), tuple(int(v) for v in idx), float(y[idx]), float(expected[idx])), cmd
    return True, "", cmd


def describe(case):
    node = case["node"]
    a = attrs_of(node)
    shapes = " ".join("%s%s" % (n, list(v.shape)) for n, v in zip(node.input, case["inputs"]))
    return "%s %s attrs=%s" % (node.op_type, shapes, {k: (to_str(v) if isinstance(v, bytes) else v)
                                                      for k, v in sorted(a.items())})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tdconv")
    ap.add_argument("--keep", help="write the case files here and keep them")
    args = ap.parse_args()
    tdconv = os.path.abspath(args.tdconv)
    t0 = time.time()
    cases = collect_cases()
    passed = failed = 0
    workdir = args.keep if args.keep else tempfile.mkdtemp(prefix="tdconv_onnx_")
    os.makedirs(workdir, exist_ok=True)
    try:
        print("onnx %s: %d node test cases (%s)" % (onnx.__version__, len(cases),
                                                      ", ".join(c["name"] for c in cases)), flush=True)
        ops_seen = set(c["node"].op_type for c in cases)
        for op_type in ("Conv", "ConvTranspose"):
            if op_type not in ops_seen:
                failed += 1
                print("FAIL: no %s node test case was collected" % op_type)
        for case in cases:
            for variant in ("channels_first/torch", "channels_last/tf", "float64"):
                label = "%s [%s]" % (case["name"], variant)
                try:
                    ok, msg, cmd = run_variant(tdconv, workdir, case, variant)
                except Exception as e:  # noqa: BLE001 - a harness crash on one case fails that case
                    ok, msg, cmd = False, "test harness error %s: %s" % (type(e).__name__, e), None
                if ok:
                    passed += 1
                    print("PASS %s: %s" % (label, " ".join(cmd[cmd.index("--output") + 2:])), flush=True)
                else:
                    failed += 1
                    print("FAIL %s: %s\n  case: %s\n  command: %s" % (
                        label, msg, describe(case),
                        " ".join(shlex.quote(c) for c in cmd) if cmd else "(none)"), flush=True)
        print("time: %.1f s" % (time.time() - t0))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""End-to-end tests of the tdconv command against /work/shared/docs/cli-contract.md.

Usage: /usr/bin/python3 tests/python/cli_test.py PATH_TO_TDCONV

Needs only the standard library and numpy. Deterministic (fixed seeds), never skips, removes its temporary
directory. Prints one line per failed check (with the command line that failed) and a final line
'N passed, M failed'; exits non-zero if any check failed or none ran.
"""

import itertools
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

TIMEOUT_S = 20.0
# If the command keeps hanging, stop starting it after this much total time: every remaining call then counts as a
# failure (never a skip), so that the whole script stays well inside ctest's limit.
TOTAL_BUDGET_S = 400.0
START = time.monotonic()

# ----------------------------------------------------------------------------------------------------------------
# harness

PASSED = 0
FAILED = 0
FAILURES = []


def check(cond, what, cmd=None, detail=""):
    """Records one check; on failure prints one line naming the check and the command line."""
    global PASSED, FAILED
    if cond:
        PASSED += 1
        return True
    FAILED += 1
    line = "FAIL: " + what
    if cmd is not None:
        line += " | cmd: " + " ".join(shlex.quote(str(c)) for c in cmd)
    if detail:
        detail = " ".join(str(detail).split())
        if len(detail) > 400:
            detail = detail[:400] + "..."
        line += " | " + detail
    print(line, flush=True)
    return False


class Result:
    def __init__(self, cmd, rc, out, err, elapsed, timed_out):
        self.cmd = cmd
        self.rc = rc
        self.out = out
        self.err = err
        self.elapsed = elapsed
        self.timed_out = timed_out

    @property
    def first_err_line(self):
        lines = self.err.splitlines()
        return lines[0] if lines else ""

    def describe(self):
        if self.timed_out and self.err.startswith("not run"):
            return self.err
        if self.timed_out:
            return "timed out: " + self.err[-300:]
        if self.rc is not None and self.rc < 0:
            try:
                name = signal.Signals(-self.rc).name
            except ValueError:
                name = str(-self.rc)
            sig = " (killed by signal %s)" % name
        else:
            sig = ""
        return "rc=%s%s stderr=%r stdout_tail=%r" % (self.rc, sig, self.err[:300], self.out[-200:])


BINARY = None
IS_SANITIZED = False


def run(args, limit_as=None, timeout=None):
    """Runs tdconv with args; a hang is reported as timed_out (rc None)."""
    cmd = [BINARY] + [str(a) for a in args]
    if time.monotonic() - START > TOTAL_BUDGET_S:
        return Result(cmd, None, "", "not run: the test's total time budget of %.0f s is spent" % TOTAL_BUDGET_S,
                      0.0, True)
    if timeout is None:
        timeout = TIMEOUT_S
    preexec = None
    if limit_as is not None and not IS_SANITIZED:
        def preexec():
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=preexec)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
        err += b"(timed out after %.0f s)" % timeout
    elapsed = time.monotonic() - t0
    return Result(cmd, None if timed_out else proc.returncode, out.decode("utf-8", "replace"),
                  err.decode("utf-8", "replace"), elapsed, timed_out)


def expect_ok(args, what):
    r = run(args)
    check(r.rc == 0, what + ": exit 0", r.cmd, r.describe())
    return r


def expect_usage_error(args, what, must_name, r=None):
    """Exit 2, and the first stderr line names one of must_name (a string or a list of alternatives)."""
    if r is None:
        r = run(args)
    ok = check(r.rc == 2, what + ": exit 2", r.cmd, r.describe())
    if ok:
        names = [must_name] if isinstance(must_name, str) else list(must_name)
        first = r.first_err_line
        check(any(n in first for n in names), what + ": first stderr line names %s" % " or ".join(map(repr, names)),
              r.cmd, "first stderr line: %r" % first)
    return r


# ----------------------------------------------------------------------------------------------------------------
# .npy writing by hand (so that headers can be broken on purpose)

def npy_header_dict(descr, fortran, shape):
    if len(shape) == 1:
        shape_s = "(%d,)" % shape[0]
    else:
        shape_s = "(" + ", ".join(str(int(s)) for s in shape) + ")"
    return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape_s)


def npy_bytes(data=None, descr="<f4", fortran=False, shape=None, version=(1, 0), header_text=None,
              magic=b"\x93NUMPY", raw_data=None):
    """Builds .npy bytes. data: numpy array (its bytes are written as is unless raw_data is given)."""
    if shape is None:
        shape = data.shape
    if header_text is None:
        header_text = npy_header_dict(descr, fortran, shape)
    major = version[0]
    len_size = 4 if major >= 2 else 2
    prefix = 6 + 2 + len_size
    h = header_text.encode("latin1")
    total = prefix + len(h) + 1
    pad = (64 - total % 64) % 64
    h = h + b" " * pad + b"\n"
    length = struct.pack("<I", len(h)) if len_size == 4 else struct.pack("<H", len(h))
    if raw_data is None:
        raw_data = b"" if data is None else np.ascontiguousarray(data).tobytes()
    return magic + bytes(version) + length + h + raw_data


def write(path, content):
    with open(path, "wb") as f:
        f.write(content)
    return path


def save(path, arr):
    np.save(path, arr)
    return path


# ----------------------------------------------------------------------------------------------------------------
# numpy reference (channels_first, torch weight layout)

def ref_conv(x, w, stride, dilation, pad_b, pad_e, groups=1, bias=None):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nd = x.ndim - 2
    n, cin = x.shape[:2]
    cout = w.shape[0]
    ks = w.shape[2:]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pad_b[i], pad_e[i]) for i in range(nd)])
    keff = [dilation[i] * (ks[i] - 1) + 1 for i in range(nd)]
    out_sz = [(xp.shape[2 + i] - keff[i]) // stride[i] + 1 for i in range(nd)]
    y = np.zeros((n, cout) + tuple(out_sz))
    cin_g = cin // groups
    cout_g = cout // groups
    for g in range(groups):
        xg = xp[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cout_g:(g + 1) * cout_g]
        for k in itertools.product(*[range(s) for s in ks]):
            sl = tuple(slice(k[i] * dilation[i], k[i] * dilation[i] + (out_sz[i] - 1) * stride[i] + 1, stride[i])
                       for i in range(nd))
            patch = xg[(slice(None), slice(None)) + sl]
            y[:, g * cout_g:(g + 1) * cout_g] += np.einsum("nc...,oc->no...", patch, wg[(slice(None), slice(None)) + k])
    if bias is not None:
        y += np.asarray(bias, np.float64).reshape((1, -1) + (1,) * nd)
    return y


def ref_conv_transpose(x, w, stride, dilation, crop_b, out_sz=None, crop_e=None, out_pad=None, groups=1, bias=None):
    """Full output, cropped crop_b at the start; output size out_sz (or full - crop_b - crop_e + out_pad);
    positions beyond the full output are zeros (then the bias is added everywhere)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nd = x.ndim - 2
    n, cin = x.shape[:2]
    cout_g = w.shape[1]
    cout = cout_g * groups
    ks = w.shape[2:]
    ins = x.shape[2:]
    keff = [dilation[i] * (ks[i] - 1) + 1 for i in range(nd)]
    full_sz = [(ins[i] - 1) * stride[i] + keff[i] for i in range(nd)]
    full = np.zeros((n, cout) + tuple(full_sz))
    cin_g = cin // groups
    for g in range(groups):
        xg = x[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cin_g:(g + 1) * cin_g]
        for k in itertools.product(*[range(s) for s in ks]):
            sl = tuple(slice(k[i] * dilation[i], k[i] * dilation[i] + (ins[i] - 1) * stride[i] + 1, stride[i])
                       for i in range(nd))
            full[(slice(None), slice(g * cout_g, (g + 1) * cout_g)) + sl] += np.einsum(
                "nc...,co->no...", xg, wg[(slice(None), slice(None)) + k])
    if out_sz is None:
        out_sz = [full_sz[i] - crop_b[i] - crop_e[i] + (out_pad[i] if out_pad else 0) for i in range(nd)]
    y = np.zeros((n, cout) + tuple(out_sz))
    src = []
    dst = []
    for i in range(nd):
        length = max(0, min(out_sz[i], full_sz[i] - crop_b[i]))
        src.append(slice(crop_b[i], crop_b[i] + length))
        dst.append(slice(0, length))
    y[(slice(None), slice(None)) + tuple(dst)] = full[(slice(None), slice(None)) + tuple(src)]
    if bias is not None:
        y += np.asarray(bias, np.float64).reshape((1, -1) + (1,) * nd)
    return y


def to_last(a):
    """(N, C, spatial...) -> (N, spatial..., C)"""
    return np.moveaxis(a, 1, -1)


def weight_tf(w):
    """torch weight (A, B, k...) -> tf weight (k..., B, A)."""
    nd = w.ndim - 2
    return np.transpose(w, tuple(range(2, 2 + nd)) + (1, 0))


# ----------------------------------------------------------------------------------------------------------------
# tests


class Ctx:
    def __init__(self, root):
        self.root = root
        self.inp = os.path.join(root, "in")
        self.out = os.path.join(root, "out")
        os.makedirs(self.inp)
        os.makedirs(self.out)
        self.counter = 0

    def ipath(self, name):
        return os.path.join(self.inp, name)

    def fresh_out(self, name="y.npy"):
        """A fresh, empty output directory and a path in it."""
        self.counter += 1
        d = os.path.join(self.out, "o%04d" % self.counter)
        os.makedirs(d)
        return d, os.path.join(d, name)


def load_output(path, cmd, what):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        check(False, what + ": output is a loadable .npy", cmd, repr(e))
        return None


def compare_run(ctx, op, x, w, args, expected, what, bias=None, expected_dtype=None, rtol=1e-5, atol=1e-5,
                extra_first=None):
    """Writes x, w (and bias), runs tdconv op, compares with expected; checks the output directory has only the
    output file (no temporary left behind)."""
    ctx.counter += 1
    tag = "c%04d" % ctx.counter
    xp = save(ctx.ipath(tag + "_x.npy"), x)
    wp = save(ctx.ipath(tag + "_w.npy"), w)
    d, yp = ctx.fresh_out()
    cmd = [op, "--input", xp, "--weight", wp, "--output", yp]
    if bias is not None:
        cmd += ["--bias", save(ctx.ipath(tag + "_b.npy"), bias)]
    cmd += list(args)
    r = run(cmd)
    if not check(r.rc == 0, what + ": exit 0", r.cmd, r.describe()):
        return None
    check(os.listdir(d) == ["y.npy"], what + ": output directory holds only the output file", r.cmd,
          "contents: %r" % sorted(os.listdir(d)))
    y = load_output(yp, r.cmd, what)
    if y is None:
        return None
    exp_dtype = expected_dtype if expected_dtype is not None else x.dtype
    check(y.dtype == exp_dtype, what + ": output dtype %s" % exp_dtype, r.cmd, "got %s" % y.dtype)
    expected = np.asarray(expected)
    if check(y.shape == expected.shape, what + ": output shape %s" % (expected.shape,), r.cmd,
             "got %s" % (y.shape,)):
        check(np.allclose(y.astype(np.float64), expected, rtol=rtol, atol=atol), what + ": values", r.cmd,
              "max abs diff %g; got %s expected %s" % (np.max(np.abs(y - expected)) if y.size else 0,
                                                      np.array2string(y.ravel()[:12]),
                                                      np.array2string(expected.ravel()[:12])))
    return y


def test_worked_examples(ctx):
    # 1D transposed convolution, stride 2.
    x = np.array([2, 3], np.float32).reshape(1, 1, 2)
    w = np.array([1, 2, 3], np.float32).reshape(1, 1, 3)
    compare_run(ctx, "conv-transpose", x, w, ["--stride", "2"], np.array([2, 4, 9, 6, 9]).reshape(1, 1, 5),
                "1D conv-transpose worked example")
    # 2D transposed convolution, stride 2, padding 1.
    x2 = np.array([[1, 2], [3, 4]], np.float32).reshape(1, 1, 2, 2)
    w2 = np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], np.float32).reshape(1, 1, 3, 3)
    compare_run(ctx, "conv-transpose", x2, w2, ["--stride", "2", "--padding", "1"],
                np.array([[0, 0, 0], [2, 4, 2], [0, 0, 0]]).reshape(1, 1, 3, 3), "2D conv-transpose worked example")
    # the same with the per-dimension BEGIN:END form and a list
    compare_run(ctx, "conv-transpose", x2, w2, ["--stride", "2,2", "--padding", "1:1,1:1"],
                np.array([[0, 0, 0], [2, 4, 2], [0, 0, 0]]).reshape(1, 1, 3, 3),
                "2D conv-transpose worked example, list forms")
    # Output-size arithmetic: input 4 kernel 3 padding 2 -> 2
    x4 = np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 4)
    w3 = np.array([1, 1, 1], np.float32).reshape(1, 1, 3)
    compare_run(ctx, "conv-transpose", x4, w3, ["--padding", "2"],
                ref_conv_transpose(x4, w3, [1], [1], [2], crop_e=[2]), "conv-transpose i4 k3 p2 -> 2")
    # Dilated convolution 1D: x[o] - x[o+4]
    x7 = np.arange(1, 8, dtype=np.float32).reshape(1, 1, 7)
    wd = np.array([1, 0, -1], np.float32).reshape(1, 1, 3)
    compare_run(ctx, "conv", x7, wd, ["--dilation", "2"], np.array([-4, -4, -4]).reshape(1, 1, 3),
                "1D dilated conv (rate 2)")
    # Dilated conv with 'same' padding (explain example): [-3 -4 -4 -4 -4 4 5]
    compare_run(ctx, "conv", x7, wd, ["--dilation", "2", "--padding", "same"],
                np.array([-3, -4, -4, -4, -4, 4, 5]).reshape(1, 1, 7), "1D dilated conv, padding same")
    # Dilated conv 2D: x[i][j] + x[i+2][j+2]
    x25 = np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5)
    wdd = np.array([[1, 0], [0, 1]], np.float32).reshape(1, 1, 2, 2)
    compare_run(ctx, "conv", x25, wdd, ["--dilation", "2", "--padding", "valid"],
                np.array([[14, 16, 18], [24, 26, 28], [34, 36, 38]]).reshape(1, 1, 3, 3), "2D dilated conv")
    # Causal (WaveNet) padding BEGIN:END
    compare_run(ctx, "conv", x7, np.array([1, 1], np.float32).reshape(1, 1, 2), ["--dilation", "2", "--padding", "2:0"],
                np.array([1, 2, 4, 6, 8, 10, 12]).reshape(1, 1, 7), "causal dilated conv --padding 2:0")
    # Bias: added to every output element
    b = np.array([0.5], np.float32)
    compare_run(ctx, "conv-transpose", x, w, ["--stride", "2"], np.array([2.5, 4.5, 9.5, 6.5, 9.5]).reshape(1, 1, 5),
                "1D conv-transpose with bias", bias=b)
    compare_run(ctx, "conv", x7, wd, ["--dilation", "2"], np.array([-3.5, -3.5, -3.5]).reshape(1, 1, 3),
                "1D dilated conv with bias", bias=b)
    # Bias is added to zero-extended elements too ('valid' conv-transpose with k_eff < stride)
    compare_run(ctx, "conv-transpose", x, np.array([1, 2], np.float32).reshape(1, 1, 2),
                ["--stride", "3", "--padding", "valid"], np.array([3, 5, 1, 4, 7, 1]).reshape(1, 1, 6),
                "conv-transpose valid with k<stride: zero-extended + bias", bias=np.array([1], np.float32))
    # dtypes
    compare_run(ctx, "conv-transpose", x.astype(np.float64), w.astype(np.float64), ["--stride", "2"],
                np.array([2, 4, 9, 6, 9]).reshape(1, 1, 5), "float64 input gives float64 output",
                expected_dtype=np.dtype("<f8"))
    compare_run(ctx, "conv-transpose", x.astype(np.float64), w.astype(np.float64), ["--stride", "2"],
                np.array([2.5, 4.5, 9.5, 6.5, 9.5]).reshape(1, 1, 5), "float64 with float64 bias",
                bias=np.array([0.5]), expected_dtype=np.dtype("<f8"))
    compare_run(ctx, "conv", x7.astype(np.float64), wd.astype(np.float64), ["--dilation", "2"],
                np.array([-4, -4, -4]).reshape(1, 1, 3), "conv float64 gives float64", expected_dtype=np.dtype("<f8"))
    # float64 precision really is float64: values that float32 cannot represent
    xf = np.array([1 + 2 ** -40, 1.0], np.float64).reshape(1, 1, 2)
    wf = np.array([1.0], np.float64).reshape(1, 1, 1)
    compare_run(ctx, "conv", xf, wf, [], xf, "float64 computed in float64 (1 + 2^-40 kept)", rtol=0, atol=2 ** -45,
                expected_dtype=np.dtype("<f8"))
    compare_run(ctx, "conv", x7, wd, ["--dilation", "2"], np.array([-4, -4, -4]).reshape(1, 1, 3),
                "float32 input gives float32 output", expected_dtype=np.dtype("<f4"))


def test_layouts_and_random(ctx):
    rng = np.random.default_rng(20240601)
    # channels_last and tf weight layouts, conv and conv-transpose, 2D
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    wc = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)  # conv, groups 2: C_out 6, C_in/g 2
    bc = rng.standard_normal(6).astype(np.float32)
    ref = ref_conv(x, wc, [2, 1], [1, 2], [1, 0], [1, 1], groups=2, bias=bc)
    geo = ["--stride", "2,1", "--dilation", "1,2", "--padding", "1:1,0:1", "--groups", "2"]
    compare_run(ctx, "conv", x, wc, geo, ref, "conv 2D groups/stride/dilation/pads, channels_first torch", bias=bc)
    compare_run(ctx, "conv", to_last(x), wc, geo + ["--layout", "channels_last"], to_last(ref),
                "conv 2D --layout channels_last", bias=bc)
    compare_run(ctx, "conv", x, weight_tf(wc), geo + ["--weight-layout", "tf"], ref, "conv 2D --weight-layout tf",
                bias=bc)
    compare_run(ctx, "conv", to_last(x), weight_tf(wc), geo + ["--weight-layout", "tf", "--layout", "channels_last"],
                to_last(ref), "conv 2D channels_last + tf", bias=bc)

    wt = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)  # conv-transpose groups 2: C_in 4, C_out/g 3
    bt = rng.standard_normal(6).astype(np.float32)
    reft = ref_conv_transpose(x, wt, [2, 3], [1, 2], [1, 0], crop_e=[0, 1], out_pad=[1, 2], groups=2, bias=bt)
    geot = ["--stride", "2,3", "--dilation", "1,2", "--padding", "1:0,0:1", "--output-padding", "1,2", "--groups", "2"]
    compare_run(ctx, "conv-transpose", x, wt, geot, reft, "conv-transpose 2D groups/stride/dilation/pads/outpad",
                bias=bt)
    compare_run(ctx, "conv-transpose", to_last(x), wt, geot + ["--layout", "channels_last"], to_last(reft),
                "conv-transpose 2D --layout channels_last", bias=bt)
    compare_run(ctx, "conv-transpose", x, weight_tf(wt), geot + ["--weight-layout", "tf"], reft,
                "conv-transpose 2D --weight-layout tf", bias=bt)
    compare_run(ctx, "conv-transpose", to_last(x), weight_tf(wt),
                ["--weight-layout", "tf", "--layout", "channels_last"] + geot, to_last(reft),
                "conv-transpose 2D channels_last + tf", bias=bt)

    # Keras Conv2DTranspose(padding='same'), channels_last, tf weights, stride 2, kernel 3: output = 2 * input,
    # crop (3 - 2) // 2 = 0 at the start, 1 at the end.
    xk = rng.standard_normal((1, 3, 4, 2)).astype(np.float32)   # NHWC
    wk = rng.standard_normal((3, 3, 5, 2)).astype(np.float32)   # (kh, kw, C_out, C_in)
    wk_torch = np.transpose(wk, (3, 2, 0, 1))
    refk = ref_conv_transpose(np.moveaxis(xk, -1, 1), wk_torch, [2, 2], [1, 1], [0, 0], out_sz=[6, 8])
    compare_run(ctx, "conv-transpose", xk, wk,
                ["--stride", "2", "--padding", "same", "--layout", "channels_last", "--weight-layout", "tf"],
                to_last(refk), "Keras-style conv-transpose same, channels_last, tf")
    # --output-size (PyTorch output_size): stride 2 padding 1 kernel 3, input 4 -> 7 or 8
    x1 = rng.standard_normal((1, 2, 4)).astype(np.float32)
    w1 = rng.standard_normal((2, 3, 3)).astype(np.float32)
    for size in (7, 8):
        compare_run(ctx, "conv-transpose", x1, w1, ["--stride", "2", "--padding", "1", "--output-size", str(size)],
                    ref_conv_transpose(x1, w1, [2], [1], [1], out_sz=[size]),
                    "conv-transpose --output-size %d" % size)
    # 'same' conv-transpose with kernel < stride: zeros appended at the end, output = input * stride
    compare_run(ctx, "conv-transpose", x1, w1[:, :, :2], ["--stride", "3", "--padding", "same"],
                ref_conv_transpose(x1, w1[:, :, :2], [3], [1], [0], out_sz=[12]),
                "conv-transpose same, k_eff < stride (zero-extended)")

    # a few random 1D/2D/3D cases against the reference
    for case in range(8):
        nd = 1 + case % 3
        groups = [1, 2][case % 2]
        cin = groups * int(rng.integers(1, 3))
        cout = groups * int(rng.integers(1, 3))
        ins = [int(rng.integers(3, 7)) for _ in range(nd)]
        ks = [int(rng.integers(1, 4)) for _ in range(nd)]
        st = [int(rng.integers(1, 4)) for _ in range(nd)]
        dl = [int(rng.integers(1, 3)) for _ in range(nd)]
        dtype = np.float32 if case < 5 else np.float64
        x = rng.standard_normal((2, cin) + tuple(ins)).astype(dtype)
        bias = rng.standard_normal(cout).astype(dtype) if case % 3 != 2 else None
        # conv
        keff = [dl[i] * (ks[i] - 1) + 1 for i in range(nd)]
        pb = [int(rng.integers(0, 3)) for _ in range(nd)]
        pe = [max(int(rng.integers(0, 3)), keff[i] - ins[i] - pb[i]) for i in range(nd)]
        w = rng.standard_normal((cout, cin // groups) + tuple(ks)).astype(dtype)
        args = ["--stride", ",".join(map(str, st)), "--dilation", ",".join(map(str, dl)),
                "--padding", ",".join("%d:%d" % (pb[i], pe[i]) for i in range(nd)), "--groups", str(groups)]
        compare_run(ctx, "conv", x, w, args, ref_conv(x, w, st, dl, pb, pe, groups, bias),
                    "random conv case %d (%dD)" % (case, nd), bias=bias)
        # conv-transpose
        wt = rng.standard_normal((cin, cout // groups) + tuple(ks)).astype(dtype)
        full = [(ins[i] - 1) * st[i] + keff[i] for i in range(nd)]
        cb = [int(rng.integers(0, max(1, full[i] // 2))) for i in range(nd)]
        ce = [int(rng.integers(0, max(1, full[i] - cb[i] - 1))) for i in range(nd)]
        op = [int(rng.integers(0, max(st[i], dl[i]))) for i in range(nd)]
        args = ["--stride", ",".join(map(str, st)), "--dilation", ",".join(map(str, dl)),
                "--padding", ",".join("%d:%d" % (cb[i], ce[i]) for i in range(nd)), "--groups", str(groups),
                "--output-padding", ",".join(map(str, op))]
        compare_run(ctx, "conv-transpose", x, wt, args,
                    ref_conv_transpose(x, wt, st, dl, cb, crop_e=ce, out_pad=op, groups=groups, bias=bias),
                    "random conv-transpose case %d (%dD)" % (case, nd), bias=bias, rtol=1e-4, atol=1e-4)


def test_option_forms(ctx):
    x2 = np.array([[1, 2], [3, 4]], np.float32).reshape(1, 1, 2, 2)
    w2 = np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]], np.float32).reshape(1, 1, 3, 3)
    xp = save(ctx.ipath("of_x.npy"), x2)
    wp = save(ctx.ipath("of_w.npy"), w2)
    expected = np.array([[0, 0, 0], [2, 4, 2], [0, 0, 0]], np.float32).reshape(1, 1, 3, 3)
    orders = [
        lambda y: ["conv-transpose", "--output", y, "--padding", "1", "--weight", wp, "--stride", "2", "--input", xp],
        lambda y: ["conv-transpose", "--stride", "2", "--padding", "1", "--input", xp, "--output", y, "--weight", wp],
        lambda y: ["conv-transpose", "--input=" + xp, "--weight=" + wp, "--output=" + y, "--stride=2", "--padding=1"],
        lambda y: ["conv-transpose", "--padding=1:1,1:1", "--output", y, "--stride=2,2", "--weight=" + wp,
                   "--input", xp, "--layout=channels_first", "--weight-layout=torch", "--groups=1",
                   "--dilation=1"],
    ]
    for i, make in enumerate(orders):
        d, yp = ctx.fresh_out()
        r = run(make(yp))
        what = "option order/--opt=value form %d" % i
        if check(r.rc == 0, what + ": exit 0", r.cmd, r.describe()):
            y = load_output(yp, r.cmd, what)
            if y is not None:
                check(y.shape == expected.shape and np.array_equal(y, expected), what + ": values", r.cmd,
                      "got %s" % (y.ravel().tolist(),))
    # shape with --opt=value and any order
    r = run(["shape", "conv-transpose", "--json", "--padding=same", "--kernel=3", "--stride=2", "--input=64,64"])
    if check(r.rc == 0, "shape with --opt=value: exit 0", r.cmd, r.describe()):
        try:
            check(json.loads(r.out)["output"] == [128, 128], "shape with --opt=value: output 128,128", r.cmd,
                  r.out[:200])
        except ValueError as e:
            check(False, "shape with --opt=value: JSON parses", r.cmd, repr(e))


def test_help(ctx):
    r = run(["--help"])
    check(r.rc == 0, "tdconv --help: exit 0", r.cmd, r.describe())
    check("conv-transpose" in r.out and "shape" in r.out, "tdconv --help lists the commands", r.cmd, r.out[:200])
    for sub in ["conv", "conv-transpose", "shape", "explain", "demo"]:
        r = run([sub, "--help"])
        check(r.rc == 0, "%s --help: exit 0" % sub, r.cmd, r.describe())
        check("Example" in r.out, "%s --help contains 'Example'" % sub, r.cmd, r.out[-300:])
    # usage errors at the top level
    r = run([])
    check(r.rc == 2, "tdconv without a command: exit 2", r.cmd, r.describe())
    expect_usage_error(["frobnicate"], "unknown command", "frobnicate")
    expect_usage_error(["demo", "extra"], "demo with an extra argument", "extra")


def test_demo(ctx):
    r = run(["demo"])
    check(r.rc == 0, "demo: exit 0", r.cmd, r.describe())
    for needle in ["[2, 4, 9, 6, 9]", "[0, 0, 0, 2, 4, 2, 0, 0, 0]",
                   "[1, 1, 3, 2, 2, 0, 0, 0, 0, 0, 2, 2, 4, 2, 2, 0, 0, 0, 0, 0, -3, -3, -7, -4, -4]",
                   "(4 - 1) * 1 + 3 - 2 * 2 = 2", "[-4, -4, -4]", "[14, 16, 18, 24, 26, 28, 34, 36, 38]",
                   "[1, 2, 4, 1]", "--layout channels_last"]:
        check(needle in r.out, "demo output contains %r" % needle, r.cmd, r.out[-300:])
    check("All demo results match" in r.out and r.out.count("[ok]") >= 9,
          "demo reports all its checks as ok", r.cmd, r.out[-300:])


def explain_result(text):
    """The numbers printed after the last 'Result (...):' line of explain output (slice labels skipped)."""
    idx = text.rfind("Result (")
    if idx < 0:
        return None
    body = text[idx:].split("\n")[1:]
    nums = []
    for line in body:
        s = line.strip()
        if not s:
            continue
        if re.match(r"^\[\d+, :", s):
            continue
        if not s.startswith("["):
            break
        nums += [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", s)]
    return nums


def to_list_text(a):
    return json.dumps(np.asarray(a).astype(int).tolist()).replace(" ", "")


def test_explain(ctx):
    cases = []
    # (op, x, w, args, expected array)
    x1 = np.array([2, 3])
    w1 = np.array([1, 2, 3])
    cases.append(("conv-transpose", x1, w1, ["--stride", "2"], np.array([2, 4, 9, 6, 9])))
    x2 = np.array([[1, 2], [3, 4]])
    w2 = np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]])
    cases.append(("conv-transpose", x2, w2, ["--stride", "2", "--padding", "1"],
                  np.array([[0, 0, 0], [2, 4, 2], [0, 0, 0]])))
    x3 = np.arange(1, 9).reshape(2, 2, 2)
    w3 = np.array([[[1, -1]], [[2, 0]]])
    cases.append(("conv-transpose", x3, w3, ["--stride", "2,1,2"],
                  ref_conv_transpose(x3[None, None], w3[None, None], [2, 1, 2], [1, 1, 1], [0, 0, 0],
                                     crop_e=[0, 0, 0])[0, 0]))
    x7 = np.arange(1, 8)
    cases.append(("conv", x7, np.array([1, 0, -1]), ["--dilation", "2"], np.array([-4, -4, -4])))
    cases.append(("conv", x7, np.array([1, 0, -1]), ["--dilation", "2", "--padding", "same"],
                  np.array([-3, -4, -4, -4, -4, 4, 5])))
    x25 = np.arange(1, 26).reshape(5, 5)
    cases.append(("conv", x25, np.array([[1, 0], [0, 1]]), ["--dilation", "2"],
                  np.array([[14, 16, 18], [24, 26, 28], [34, 36, 38]])))
    x3c = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
    cases.append(("conv", x3c, np.array([[[1]], [[1]]]), ["--padding", "0,1,0"],
                  np.array([[[0, 0], [6, 8], [10, 12], [0, 0]]])))
    x3d = np.arange(27).reshape(3, 3, 3) - 13
    w3d = np.array([[[1, 2], [0, -1]], [[3, 0], [1, 1]]])
    cases.append(("conv", x3d, w3d, ["--stride", "2", "--padding", "1"],
                  ref_conv(x3d[None, None], w3d[None, None], [2, 2, 2], [1, 1, 1], [1, 1, 1], [1, 1, 1])[0, 0]))
    for op, x, w, args, expected in cases:
        cmd = ["explain", op, "--x", to_list_text(x), "--w", to_list_text(w)] + args
        r = run(cmd)
        what = "explain %s %dD" % (op, np.ndim(x))
        if not check(r.rc == 0, what + ": exit 0", r.cmd, r.describe()):
            continue
        got = explain_result(r.out)
        exp = [float(v) for v in np.asarray(expected).ravel()]
        check(got == exp, what + ": result numbers", r.cmd, "got %s expected %s" % (got, exp))
        shape_txt = "x".join(str(s) for s in np.shape(expected))
        check("Result (%s)" % shape_txt in r.out, what + ": result size %s" % shape_txt, r.cmd, r.out[-200:])
    # explain usage errors
    expect_usage_error(["explain", "conv", "--x", "[1,2", "--w", "[1]"], "explain malformed --x", "--x")
    expect_usage_error(["explain", "conv", "--x", "[1,2]"], "explain without --w", "--w")
    expect_usage_error(["explain", "conv", "--x", "[[1,2],[3]]", "--w", "[[1]]"], "explain ragged --x", "--x")
    expect_usage_error(["explain", "conv", "--x", "[" + ",".join(["1"] * 300) + "]", "--w", "[1]"],
                       "explain --x with more than 256 numbers", "--x")
    expect_usage_error(["explain", "conv-transpose", "--x", "[1,2]", "--w", "[1,2,3]", "--stride", "0"],
                       "explain --stride 0", "--stride")


def shape_json(args, what):
    r = run(["shape"] + args + ["--json"])
    if not check(r.rc == 0, what + ": exit 0", r.cmd, r.describe()):
        return None, r
    try:
        return json.loads(r.out), r
    except ValueError as e:
        check(False, what + ": stdout is JSON", r.cmd, repr(e) + " " + r.out[:200])
        return None, r


def test_shape(ctx):
    # text form
    r = run(["shape", "conv-transpose", "--input", "4", "--kernel", "3", "--padding", "2"])
    if check(r.rc == 0, "shape text conv-transpose i4 k3 p2: exit 0", r.cmd, r.describe()):
        check(re.search(r"^\s*output\s+2\s*$", r.out, re.M) is not None, "shape text: 'output 2' line", r.cmd,
              r.out[:400])
    r = run(["shape", "conv", "--input", "33", "--kernel", "3", "--dilation", "18", "--padding", "18"])
    if check(r.rc == 0, "shape text conv 33 k3 d18 p18: exit 0", r.cmd, r.describe()):
        check(re.search(r"^\s*output\s+33\s*$", r.out, re.M) is not None, "shape text: 'output 33' line", r.cmd,
              r.out[:400])
    # JSON form
    d, r = shape_json(["conv-transpose", "--input", "4", "--kernel", "3", "--padding", "2"], "shape json i4 k3 p2")
    if d is not None:
        check(d.get("output") == [2], "shape json conv-transpose i4 k3 p2: output [2]", r.cmd, d.get("output"))
        check(d.get("full_output") == [6], "shape json conv-transpose i4 k3 p2: full_output [6]", r.cmd,
              d.get("full_output"))
    d, r = shape_json(["conv-transpose", "--input", "64,64", "--kernel", "3", "--stride", "2", "--padding", "same"],
                      "shape json 64x64 k3 s2 same")
    if d is not None:
        check(d.get("output") == [128, 128], "shape json convT 64,64 k3 s2 same: output [128,128]", r.cmd,
              d.get("output"))
        fw = {f.get("framework"): f for f in d.get("frameworks", [])}
        check("PyTorch" in fw and fw["PyTorch"].get("exact") is False,
              "shape json convT same: PyTorch entry is not exact", r.cmd, json.dumps(fw.get("PyTorch"))[:300])
        check("Keras" in fw and fw["Keras"].get("exact") is True, "shape json convT same: Keras entry exact", r.cmd,
              json.dumps(fw.get("Keras"))[:300])
        check(d.get("padding", {}).get("begin") == [0, 0] and d.get("padding", {}).get("end") == [1, 1],
              "shape json convT same: crop 0 at start, 1 at end", r.cmd, d.get("padding"))
    d, r = shape_json(["conv", "--input", "33", "--kernel", "3", "--dilation", "18", "--padding", "18"],
                      "shape json conv 33 k3 d18 p18")
    if d is not None:
        check(d.get("output") == [33], "shape json conv 33 k3 d18 p18: output [33]", r.cmd, d.get("output"))
        check(d.get("effective_kernel") == [37], "shape json conv d18: effective_kernel 37", r.cmd,
              d.get("effective_kernel"))
    d, r = shape_json(["conv", "--input", "16,16,16", "--kernel", "3", "--stride", "2", "--padding", "same_lower"],
                      "shape json 3D conv same_lower")
    if d is not None:
        check(d.get("output") == [8, 8, 8], "shape json 3D conv same_lower: output [8,8,8]", r.cmd, d.get("output"))
        check(d.get("padding", {}).get("begin") == [1, 1, 1], "shape json 3D same_lower: odd pad at the start",
              r.cmd, d.get("padding"))
    d, r = shape_json(["conv-transpose", "--input", "4,5,6", "--kernel", "3,2,1", "--stride", "2,3,1",
                       "--dilation", "1,2,1", "--padding", "1", "--output-padding", "1,2,0"], "shape json 3D convT")
    if d is not None:
        exp = [(4 - 1) * 2 + 3 - 2 + 1, (5 - 1) * 3 + 3 - 2 + 2, (6 - 1) * 1 + 1 - 2 + 0]
        check(d.get("output") == exp, "shape json 3D conv-transpose: output %s" % exp, r.cmd, d.get("output"))
    d, r = shape_json(["conv-transpose", "--input", "4", "--kernel", "3", "--stride", "2", "--padding", "1",
                       "--output-size", "8"], "shape json --output-size")
    if d is not None:
        check(d.get("output") == [8], "shape json convT --output-size 8: output [8]", r.cmd, d.get("output"))
    # shape usage errors
    expect_usage_error(["shape", "conv", "--kernel", "3"], "shape without --input", "--input")
    expect_usage_error(["shape", "conv", "--input", "4"], "shape without --kernel", "--kernel")
    expect_usage_error(["shape", "conv", "--input", "4", "--kernel", "x"], "shape --kernel garbage", "--kernel")
    expect_usage_error(["shape", "conv", "--input", "1,2,3,4", "--kernel", "1"], "shape 4 spatial dims", "--input")
    expect_usage_error(["shape", "conv", "--input", "4", "--kernel", "3", "--stride", "0"], "shape --stride 0",
                       "--stride")
    expect_usage_error(["shape", "conv", "--input", "4", "--kernel", "9"], "shape kernel larger than input",
                       ["--kernel", "kernel"])
    expect_usage_error(["shape", "conv-transpose", "--input", "4", "--kernel", "3", "--stride",
                        "9223372036854775807"], "shape huge stride", "--stride")


# ----------------------------------------------------------------------------------------------------------------
# errors: exit 2, message, output file untouched


def snapshot(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        return f.read(), st.st_mtime_ns


class Files:
    """Small valid problem: conv-transpose 1D, x (1,1,2), w (1,1,3), b (1,)."""

    def __init__(self, ctx):
        self.x = save(ctx.ipath("ok_x.npy"), np.array([2, 3], np.float32).reshape(1, 1, 2))
        self.w = save(ctx.ipath("ok_w.npy"), np.array([1, 2, 3], np.float32).reshape(1, 1, 3))
        self.b = save(ctx.ipath("ok_b.npy"), np.array([0.5], np.float32))
        self.x2 = save(ctx.ipath("ok_x2.npy"), np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
        self.w2 = save(ctx.ipath("ok_w2.npy"), np.ones((1, 1, 3, 3), np.float32))
        self.x64 = save(ctx.ipath("ok_x64.npy"), np.arange(4096, dtype=np.float32).reshape(1, 1, 64, 64))


def with_output(args, yp):
    """The command with '--output yp' right after the subcommand (so that the last option stays last)."""
    args = list(args)
    return args[:1] + ["--output", yp] + args[1:]


def run_failure(ctx, args_without_output, what, must_name, limit_as=None, max_seconds=None):
    """Runs a command that must fail twice: once with a fresh output path (must not be created, directory must stay
    empty) and once with an existing output file (must be unchanged: bytes and mtime)."""
    # 1. output does not exist
    d, yp = ctx.fresh_out()
    args = with_output(args_without_output, yp)
    r = run(args, limit_as=limit_as)
    expect_usage_error(args, what, must_name, r=r)
    if max_seconds is not None and not r.timed_out:
        check(r.elapsed < max_seconds, what + ": fails quickly (< %g s)" % max_seconds, r.cmd,
              "took %.2f s" % r.elapsed)
    check(not os.path.exists(yp), what + ": no output file created", r.cmd)
    check(os.listdir(d) == [], what + ": no temporary file left in the output directory", r.cmd,
          "contents: %r" % sorted(os.listdir(d)))
    # 2. output exists already
    d, yp = ctx.fresh_out()
    sentinel = npy_bytes(np.array([7, 7, 7], np.float32).reshape(1, 1, 3))
    write(yp, sentinel)
    os.utime(yp, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = snapshot(yp)
    args = with_output(args_without_output, yp)
    r2 = run(args, limit_as=limit_as)
    check(r2.rc == 2, what + " (existing output): exit 2", r2.cmd, r2.describe())
    if os.path.exists(yp):
        after = snapshot(yp)
        check(after[0] == before[0], what + " (existing output): output bytes unchanged", r2.cmd)
        check(after[1] == before[1], what + " (existing output): output mtime unchanged", r2.cmd)
    else:
        check(False, what + " (existing output): output file still exists", r2.cmd)
    check(sorted(os.listdir(d)) == ["y.npy"], what + " (existing output): no temporary file left", r2.cmd,
          "contents: %r" % sorted(os.listdir(d)))
    return r


def test_flag_errors(ctx, f):
    ct = ["conv-transpose", "--input", f.x, "--weight", f.w]
    cv = ["conv", "--input", f.x2, "--weight", f.w2]
    cases = [
        (ct + ["--bogus", "1"], "unknown option", "--bogus"),
        (ct + ["--stride"], "option without a value (last)", "--stride"),
        (ct + ["--stride", "--padding", "1"], "option followed by another option instead of a value", "--stride"),
        (ct + ["--input", f.x], "repeated --input", "--input"),
        (ct + ["--stride", "2", "--stride", "2"], "repeated option", "--stride"),
        (ct + ["--padding", "1", "--padding=1"], "repeated option, mixed forms", "--padding"),
        (ct + ["--stride", "x"], "non-integer stride", "--stride"),
        (ct + ["--stride", "2.5"], "fractional stride", "--stride"),
        (ct + ["--stride", "0"], "stride 0", "--stride"),
        (ct + ["--stride", "-1"], "negative stride", "--stride"),
        (ct + ["--stride", ""], "empty stride", "--stride"),
        (ct + ["--dilation", "0"], "dilation 0", "--dilation"),
        (ct + ["--padding", "-1"], "negative padding", "--padding"),
        (ct + ["--padding", "1:-1"], "negative padding end", "--padding"),
        (ct + ["--padding", "garbage"], "--padding garbage", "--padding"),
        (ct + ["--padding", "1:2:3"], "--padding item with two colons", "--padding"),
        (ct + ["--padding", "1,"], "--padding trailing comma", "--padding"),
        (ct + ["--stride", "1,2"], "too many --stride values for 1D", "--stride"),
        (cv + ["--stride", "1,2,3"], "too many --stride values for 2D", "--stride"),
        (cv + ["--padding", "1,1,1"], "too many --padding values for 2D", "--padding"),
        (cv + ["--dilation", "1,1,1"], "too many --dilation values for 2D", "--dilation"),
        (ct + ["--stride", "2", "--output-padding", "2"], "--output-padding >= stride", "--output-padding"),
        (ct + ["--output-padding", "1"], "--output-padding with stride 1", "--output-padding"),
        (ct + ["--stride", "2", "--output-padding", "1,1"], "too many --output-padding values", "--output-padding"),
        (cv + ["--output-padding", "1"], "--output-padding on conv", "--output-padding"),
        (cv + ["--output-size", "4"], "--output-size on conv", "--output-size"),
        (ct + ["--stride", "2", "--output-size", "100"], "--output-size too large", "--output-size"),
        (ct + ["--stride", "2", "--output-size", "4"], "--output-size too small", "--output-size"),
        (ct + ["--stride", "2", "--output-size", "6", "--output-padding", "1"],
         "--output-size with --output-padding", ["--output-size", "--output-padding"]),
        (ct + ["--groups", "2"], "groups not dividing channels", "--groups"),
        (ct + ["--groups", "0"], "groups 0", "--groups"),
        (cv + ["--groups", "x"], "groups garbage", "--groups"),
        (["conv", "--input", f.x, "--weight", f.w], "kernel larger than the (unpadded) input",
         ["--weight", "kernel"]),
        (cv + ["--dilation", "3"], "dilated kernel larger than the padded input", ["--weight", "kernel",
                                                                                 "--dilation"]),
        (ct + ["--layout", "channels_middle"], "wrong --layout value", "--layout"),
        (ct + ["--layout", "NHWC"], "wrong --layout value NHWC", "--layout"),
        (ct + ["--weight-layout", "keras"], "wrong --weight-layout value", "--weight-layout"),
        (ct + ["--max-memory", "lots"], "--max-memory garbage", "--max-memory"),
        (ct + ["--max-memory", "0"], "--max-memory 0", "--max-memory"),
        (ct + ["--stride", "9223372036854775807"], "huge stride (int64 max)", "--stride"),
        (ct + ["--stride", "99999999999999999999999"], "stride beyond int64", "--stride"),
        (ct + ["--padding", str(10 ** 18)], "conv-transpose padding 10**18", "--padding"),
        (cv + ["--padding", str(10 ** 18)], "conv padding 10**18", ["--padding", "--max-memory"]),
        (cv + ["--padding", "9223372036854775807"], "conv padding int64 max", ["--padding", "--max-memory"]),
        (ct + ["--dilation", "9223372036854775807"], "huge dilation", "--dilation"),
        (ct + ["--stride", "9223372036854775807", "--output-padding", "9223372036854775806"],
         "huge stride and output padding", ["--stride", "--output-padding"]),
        (ct + ["--output-size", "9223372036854775807"], "huge --output-size", "--output-size"),
        (ct + ["--groups", "9223372036854775807"], "huge groups", "--groups"),
        (ct + ["extra"], "stray positional argument", "extra"),
    ]
    for args, what, name in cases:
        run_failure(ctx, args, what, name)
    # a huge conv stride is fine: one output per dimension
    compare_run(ctx, "conv", np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4), np.ones((1, 1, 3, 3), np.float32),
                ["--stride", "4611686018427387904"], np.array([45.0]).reshape(1, 1, 1, 1), "conv stride 2**62")
    # missing required options
    d, yp = ctx.fresh_out()
    expect_usage_error(["conv-transpose", "--weight", f.w, "--output", yp], "missing --input", "--input")
    expect_usage_error(["conv-transpose", "--input", f.x, "--output", yp], "missing --weight", "--weight")
    expect_usage_error(["conv-transpose", "--input", f.x, "--weight", f.w], "missing --output", "--output")
    expect_usage_error(["conv", "--input", f.x2, "--output", yp], "conv missing --weight", "--weight")
    check(os.listdir(d) == [], "missing options: nothing written", None, sorted(os.listdir(d)))
    # output in a directory that does not exist
    bad = os.path.join(ctx.root, "no_such_dir", "y.npy")
    expect_usage_error(ct + ["--output", bad], "output in a missing directory", bad)


def test_channel_hints(ctx):
    xcl = save(ctx.ipath("hint_x_cl.npy"), np.ones((1, 2, 5, 5), np.float32))  # NHWC with H=2, W=5, C=5
    # conv-transpose weight (C_in 5, C_out 4, 3, 3)
    wct = save(ctx.ipath("hint_w_ct.npy"), np.ones((5, 4, 3, 3), np.float32))
    r = run_failure(ctx, ["conv-transpose", "--input", xcl, "--weight", wct], "channels-last input (conv-transpose)",
                    xcl)
    check("--layout channels_last" in r.err, "channels-last input (conv-transpose): hint '--layout channels_last'",
          r.cmd, r.err)
    # conv weight (C_out 4, C_in 5, 3, 3)
    wcv = save(ctx.ipath("hint_w_cv.npy"), np.ones((4, 5, 3, 3), np.float32))
    r = run_failure(ctx, ["conv", "--input", xcl, "--weight", wcv], "channels-last input (conv)", xcl)
    check("--layout channels_last" in r.err, "channels-last input (conv): hint '--layout channels_last'", r.cmd,
          r.err)
    # ... and with the hint followed it works
    d, yp = ctx.fresh_out()
    r = run(["conv", "--input", xcl, "--weight", wcv, "--output", yp, "--layout", "channels_last", "--padding",
             "same"])
    if check(r.rc == 0, "channels-last input with --layout channels_last: exit 0", r.cmd, r.describe()):
        y = load_output(yp, r.cmd, "channels-last conv")
        if y is not None:
            check(y.shape == (1, 2, 5, 4), "channels-last conv output shape (1,2,5,4)", r.cmd, y.shape)
    # tf-layout weight passed as torch
    x5 = save(ctx.ipath("hint_x5.npy"), np.ones((1, 5, 6, 6), np.float32))
    wtf_ct = save(ctx.ipath("hint_wtf_ct.npy"), np.ones((3, 3, 4, 5), np.float32))  # (k, k, C_out, C_in=5)
    r = run_failure(ctx, ["conv-transpose", "--input", x5, "--weight", wtf_ct, "--weight-layout", "torch"],
                    "tf weight with --weight-layout torch (conv-transpose)", [x5, wtf_ct])
    check("--weight-layout tf" in r.err, "tf weight given as torch (conv-transpose): hint '--weight-layout tf'",
          r.cmd, r.err)
    wtf_cv = save(ctx.ipath("hint_wtf_cv.npy"), np.ones((3, 3, 5, 4), np.float32))  # (k, k, C_in=5, C_out)
    r = run_failure(ctx, ["conv", "--input", x5, "--weight", wtf_cv], "tf weight as torch (conv)", [x5, wtf_cv])
    check("--weight-layout tf" in r.err, "tf weight given as torch (conv): hint '--weight-layout tf'", r.cmd, r.err)
    # conv weight with the wrong number of input channels and no layout story: still exit 2 naming a file
    wbad = save(ctx.ipath("hint_wbad.npy"), np.ones((2, 3, 3, 3), np.float32))
    run_failure(ctx, ["conv", "--input", x5, "--weight", wbad], "conv channel mismatch", [x5, wbad])
    # bias of the wrong length for C_out
    b3 = save(ctx.ipath("hint_b3.npy"), np.ones(3, np.float32))
    run_failure(ctx, ["conv", "--input", x5, "--weight", wtf_cv, "--weight-layout", "tf", "--bias", b3],
                "bias length != C_out", b3)


def test_max_memory(ctx, f):
    run_failure(ctx, ["conv-transpose", "--input", f.x64, "--weight", f.w2, "--stride", "2", "--max-memory", "1K"],
                "--max-memory 1K on a 64x64 problem", "--max-memory")
    run_failure(ctx, ["conv-transpose", "--input", f.x64, "--weight", f.w2, "--stride", "100000"],
                "conv-transpose stride 100000 on 64x64 (huge output, default limit)", "--max-memory",
                max_seconds=10)
    run_failure(ctx, ["conv", "--input", f.x2, "--weight", f.w2, "--padding", "100000"],
                "conv padding 100000 on 4x4 (huge output, default limit)", ["--max-memory", "--padding"],
                max_seconds=10)
    run_failure(ctx, ["conv-transpose", "--input", f.x, "--weight", f.w, "--stride", "100000", "--max-memory", "1K"],
                "conv-transpose stride 100000 with --max-memory 1K", "--max-memory")
    # a limit with room to spare succeeds
    d, yp = ctx.fresh_out()
    r = run(["conv-transpose", "--input", f.x64, "--weight", f.w2, "--stride", "2", "--max-memory", "64M",
             "--output", yp])
    if check(r.rc == 0, "--max-memory 64M on a 64x64 problem: exit 0", r.cmd, r.describe()):
        y = load_output(yp, r.cmd, "--max-memory 64M")
        if y is not None:
            check(y.shape == (1, 1, 129, 129), "--max-memory 64M: output shape", r.cmd, y.shape)


# hostile .npy files

def hostile_files(ctx, position):
    """(name, path, what-must-be-named) for broken or unacceptable .npy files in the given position."""
    if position == "input":
        good = np.array([2, 3], np.float32).reshape(1, 1, 2)
    elif position == "weight":
        good = np.array([1, 2, 3], np.float32).reshape(1, 1, 3)
    else:
        good = np.array([0.5], np.float32)
    p = lambda n: ctx.ipath("hostile_%s_%s.npy" % (position, n))  # noqa: E731
    good_bytes = npy_bytes(good)
    hdr_len = 10 + struct.unpack("<H", good_bytes[8:10])[0]
    out = []

    def add(name, content):
        out.append((name, write(p(name), content)))

    add("empty", b"")
    add("wrong_magic", b"\x93NUMPZ" + good_bytes[6:])
    add("text_file", b"hello, this is not a numpy file\n" * 4)
    add("magic_only", good_bytes[:6])
    add("truncated_header", good_bytes[:hdr_len // 2])
    add("header_len_beyond_file", good_bytes[:8] + struct.pack("<H", 60000) + good_bytes[10:])
    add("huge_shape_2d", npy_bytes(shape=(100000000000, 100000000000), raw_data=good.tobytes()))
    big_shape = {"input": (1, 1, 100000000000, 100000000000), "weight": (1, 1, 100000000000, 100000000000),
                 "bias": (100000000000,)}[position]
    add("huge_shape", npy_bytes(shape=big_shape, raw_data=good.tobytes()))
    # claims 1 GiB of float32 while holding 8 bytes: must not be allocated
    add("gib_shape", npy_bytes(shape=(1, 1, 1 << 28) if position != "bias" else (1 << 28,), raw_data=good.tobytes()))
    add("overflow_shape", npy_bytes(shape=(1, 1, 4611686018427387904, 4) if position != "bias" else
                                    (4611686018427387904 * 4,), raw_data=good.tobytes()))
    add("negative_shape", npy_bytes(shape=tuple(-s for s in good.shape), raw_data=good.tobytes()))
    add("truncated_data", good_bytes[:-1])
    add("truncated_data_4", good_bytes[:-4])
    add("trailing_bytes", good_bytes + b"\x00\x00\x00\x00")
    add("int32", npy_bytes(good.astype("<i4"), descr="<i4"))
    add("float16", npy_bytes(good.astype("<f2"), descr="<f2"))
    add("big_endian", npy_bytes(good.astype(">f4"), descr=">f4"))
    add("big_endian_f8", npy_bytes(good.astype(">f8"), descr=">f8"))
    add("object", npy_bytes(shape=good.shape, descr="|O", raw_data=b"\x00" * (8 * good.size)))
    add("fortran_order", npy_bytes(good, fortran=True))
    add("version_9_9", npy_bytes(good, version=(9, 9)))
    add("version_0_0", npy_bytes(good, version=(0, 0)))
    add("header_not_dict", npy_bytes(good, header_text="[1, 2, 3]"))
    add("header_missing_shape", npy_bytes(good, header_text="{'descr': '<f4', 'fortran_order': False, }"))
    add("header_garbage", npy_bytes(good, header_text="{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, x"))
    add("header_shape_not_tuple", npy_bytes(good, header_text="{'descr': '<f4', 'fortran_order': False, "
                                                              "'shape': 'abc', }"))
    add("header_nul", npy_bytes(good, header_text="{'descr': '<f4', 'fortran_order': False, 'shape': (1,\x00 1, 2), }"))
    if position != "bias":
        add("rank2", npy_bytes(good.reshape(good.shape[1:])))
        add("rank6", npy_bytes(good.reshape((1, 1, 1, 1) + good.shape[2:] + (1,))))
        add("zero_size", npy_bytes(shape=(1, 1, 0)))
        add("zero_channels", npy_bytes(shape=(1, 0, good.shape[2])))
        add("rank0", npy_bytes(shape=(), raw_data=b"\x00\x00\x80\x3f"))
    else:
        add("bias_rank2", npy_bytes(good.reshape(1, 1)))
        add("bias_wrong_length", npy_bytes(np.array([1, 2], np.float32)))
        add("bias_zero_length", npy_bytes(shape=(0,)))
        add("bias_rank0", npy_bytes(shape=(), raw_data=b"\x00\x00\x80\x3f"))
    add("float64_mismatch", npy_bytes(good.astype("<f8"), descr="<f8"))
    out.append(("nonexistent", ctx.ipath("hostile_%s_does_not_exist.npy" % position)))
    dpath = ctx.ipath("hostile_%s_a_directory.npy" % position)
    os.makedirs(dpath)
    out.append(("directory", dpath))
    return out


def test_hostile_npy(ctx, f):
    for position in ["input", "weight", "bias"]:
        for name, path in hostile_files(ctx, position):
            x, w, b = f.x, f.w, f.b
            if position == "input":
                x = path
            elif position == "weight":
                w = path
            else:
                b = path
            names = [path, "--" + position]
            if name == "float64_mismatch":
                # either the odd file or the one it disagrees with may be named
                names = [path, f.x, f.w, "--" + position]
            args = ["conv-transpose", "--input", x, "--weight", w, "--bias", b, "--stride", "2"]
            lying = name in ("huge_shape_2d", "huge_shape", "gib_shape", "overflow_shape")
            run_failure(ctx, args, "hostile %s .npy (%s)" % (position, name), names,
                        limit_as=(512 << 20) if lying else None, max_seconds=5 if lying else None)
    # valid variants that must be accepted: format 2.0 header, other header spellings
    x2 = write(ctx.ipath("v2_x.npy"), npy_bytes(np.array([2, 3], np.float32).reshape(1, 1, 2), version=(2, 0)))
    d, yp = ctx.fresh_out()
    r = run(["conv-transpose", "--input", x2, "--weight", f.w, "--output", yp, "--stride", "2"])
    if check(r.rc == 0, "format 2.0 .npy input accepted: exit 0", r.cmd, r.describe()):
        y = load_output(yp, r.cmd, "format 2.0")
        if y is not None:
            check(y.ravel().tolist() == [2, 4, 9, 6, 9], "format 2.0 input: values", r.cmd, y.ravel().tolist())
    # numpy's own header spacing variants (no trailing comma, extra spaces)
    x3 = write(ctx.ipath("spacing_x.npy"), npy_bytes(np.array([2, 3], np.float32).reshape(1, 1, 2),
                                                     header_text="{'shape':(1,1,2),'fortran_order':False,"
                                                                 "'descr':'<f4'}"))
    d, yp = ctx.fresh_out()
    r = run(["conv-transpose", "--input", x3, "--weight", f.w, "--output", yp, "--stride", "2"])
    if check(r.rc == 0, "header with other key order and no spaces accepted: exit 0", r.cmd, r.describe()):
        y = load_output(yp, r.cmd, "header key order")
        if y is not None:
            check(y.ravel().tolist() == [2, 4, 9, 6, 9], "header key order: values", r.cmd, y.ravel().tolist())
    # the output written by tdconv has a header numpy reads as C-order little-endian
    d, yp = ctx.fresh_out()
    r = run(["conv-transpose", "--input", f.x, "--weight", f.w, "--output", yp, "--stride", "2"])
    if check(r.rc == 0, "plain run: exit 0", r.cmd, r.describe()):
        with open(yp, "rb") as fh:
            data = fh.read()
        check(data[:6] == b"\x93NUMPY", "output has the .npy magic", r.cmd, data[:10])
        y = load_output(yp, r.cmd, "plain")
        if y is not None:
            check(y.dtype.str == "<f4" and y.flags["C_CONTIGUOUS"], "output is <f4, C order", r.cmd, y.dtype.str)


def test_overwrite_success(ctx, f):
    """A successful run replaces an existing output whole and leaves no temporary behind."""
    d, yp = ctx.fresh_out()
    write(yp, b"old contents that are not a numpy file")
    r = run(["conv-transpose", "--input", f.x, "--weight", f.w, "--output", yp, "--stride", "2"])
    if check(r.rc == 0, "overwrite existing output: exit 0", r.cmd, r.describe()):
        y = load_output(yp, r.cmd, "overwrite")
        if y is not None:
            check(y.ravel().tolist() == [2, 4, 9, 6, 9], "overwrite existing output: new values", r.cmd)
        check(os.listdir(d) == ["y.npy"], "overwrite: no temporary left", r.cmd, sorted(os.listdir(d)))


def test_fuzz(ctx, f, count=200):
    rnd = random.Random(987654321)
    base_arrays = [
        np.array([2, 3], np.float32).reshape(1, 1, 2),
        np.arange(12, dtype=np.float32).reshape(1, 2, 6),
        np.arange(8, dtype=np.float64).reshape(1, 1, 8),
        np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5),
    ]
    # weights matching channel count for the different inputs (torch conv-transpose layout: C_in, C_out, k)
    wpaths = {
        1: f.w,
        2: save(ctx.ipath("fz_w2.npy"), np.ones((2, 1, 3), np.float32)),
    }
    for i in range(count):
        base = rnd.choice(base_arrays)
        blob = bytearray(npy_bytes(base, descr=base.dtype.str))
        kind = rnd.randrange(8)
        if kind == 0:  # pure random bytes
            blob = bytearray(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 300)))
        elif kind == 1:  # magic, then random bytes
            blob = bytearray(b"\x93NUMPY" + bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 300))))
        elif kind == 2:  # flip a few random bytes anywhere
            for _ in range(rnd.randrange(1, 6)):
                blob[rnd.randrange(len(blob))] = rnd.getrandbits(8)
        elif kind == 3:  # flip bytes in the header
            for _ in range(rnd.randrange(1, 4)):
                blob[rnd.randrange(min(len(blob), 128))] = rnd.getrandbits(8)
        elif kind == 4:  # truncate
            blob = blob[:rnd.randrange(len(blob))]
        elif kind == 5:  # append or insert garbage
            pos = rnd.randrange(len(blob) + 1)
            blob[pos:pos] = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 40)))
        elif kind == 6:  # rewrite the shape numbers
            hdr = npy_header_dict(base.dtype.str, False, base.shape)
            nums = [rnd.choice([0, 1, 2, 3, 5, 7, 2 ** 31, 2 ** 32 + 1, 2 ** 62, 2 ** 63 - 1, 2 ** 63, 2 ** 64 + 3,
                                10 ** 30, -1]) for _ in base.shape]
            if rnd.random() < 0.3:
                nums = nums + [rnd.choice([1, 2, 0])]
            hdr = hdr.replace("(" + ", ".join(map(str, base.shape)) + ")", "(" + ", ".join(map(str, nums)) + ")")
            blob = bytearray(npy_bytes(base, header_text=hdr))
        else:  # rewrite the header text with a random edit
            hdr = npy_header_dict(base.dtype.str, False, base.shape)
            choices = [hdr.replace("<f", rnd.choice(["<i", ">f", "|f", "<c", "<u", "<V", "<U", "<f16"])),
                       hdr.replace("False", rnd.choice(["True", "0", "None", "'False'", ""])),
                       hdr.replace("'shape'", rnd.choice(["'shap'", "'shape' ", "shape", "'descr'"])),
                       hdr.replace("}", rnd.choice(["", "}}", ", 'extra': 1}", "]"])),
                       hdr.replace(",", "", 1),
                       hdr[:rnd.randrange(len(hdr))]]
            blob = bytearray(npy_bytes(base, header_text=rnd.choice(choices),
                                       version=rnd.choice([(1, 0), (2, 0), (3, 0), (1, 1)])))
        path = write(ctx.ipath("fuzz_%03d.npy" % i), bytes(blob))
        channels = base.shape[1]
        d, yp = ctx.fresh_out()
        cmd = ["conv-transpose", "--input", path, "--weight", wpaths[channels], "--output", yp, "--stride", "2"]
        if base.ndim == 4:
            cmd = ["conv", "--input", path, "--weight", f.w2, "--output", yp]
        r = run(cmd)
        what = "fuzz #%d (mutation %d)" % (i, kind)
        if not check(r.rc in (0, 2), what + ": exit 0 or 2 within %g s" % TIMEOUT_S, r.cmd, r.describe()):
            continue
        if r.rc == 2:
            check(not os.path.exists(yp), what + ": failed run created no output", r.cmd)
            check(os.listdir(d) == [], what + ": no temporary left after failure", r.cmd, sorted(os.listdir(d)))
        else:
            try:
                np.load(yp, allow_pickle=False)
                check(True, what + ": output loads")
            except Exception as e:  # noqa: BLE001
                check(False, what + ": successful run wrote a loadable .npy", r.cmd, repr(e))
            check(os.listdir(d) == ["y.npy"], what + ": no temporary left after success", r.cmd,
                  sorted(os.listdir(d)))


def main():
    global BINARY, IS_SANITIZED
    if len(sys.argv) != 2:
        print("usage: cli_test.py PATH_TO_TDCONV", file=sys.stderr)
        print("0 passed, 1 failed")
        return 2
    BINARY = os.path.abspath(sys.argv[1])
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        print("FAIL: tdconv binary not found or not executable: %s" % BINARY)
        print("0 passed, 1 failed")
        return 1
    with open(BINARY, "rb") as fh:
        IS_SANITIZED = b"__asan_init" in fh.read()
    t0 = time.monotonic()
    root = tempfile.mkdtemp(prefix="tdconv_cli_test_")
    try:
        ctx = Ctx(root)
        f = Files(ctx)
        tests = [test_help, test_demo, test_explain, test_shape, test_worked_examples, test_layouts_and_random,
                 test_option_forms, lambda c: test_flag_errors(c, f), test_channel_hints,
                 lambda c: test_max_memory(c, f), lambda c: test_hostile_npy(c, f),
                 lambda c: test_overwrite_success(c, f), lambda c: test_fuzz(c, f)]
        for t in tests:
            try:
                t(ctx)
            except Exception as e:  # noqa: BLE001  (a bug in a test is a failure, never a skip)
                import traceback
                tb = traceback.format_exc().strip().splitlines()
                check(False, "test %s raised %r" % (getattr(t, "__name__", "?"), e), None, " / ".join(tb[-3:]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - t0
    print("(ran in %.1f s)" % elapsed)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 0 if FAILED == 0 and PASSED > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

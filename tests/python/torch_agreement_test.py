#!/usr/bin/python3
"""Random agreement test: `tdconv conv` / `tdconv conv-transpose` against PyTorch.

Run as:  /usr/bin/python3 torch_agreement_test.py PATH_TO_TDCONV [--case I] [--keep DIR] [--count N]

Every case is generated from its own fixed seed (CASE_SEED_BASE + index), so one failing case can be rerun alone
with `--case I` (add `--keep DIR` to keep its .npy files and rerun the printed command by hand).

The reference is always computed by PyTorch in float64 (float32 cases cast their float32 inputs to float64
first, so the reference is exact up to float64 rounding).  What is compared, per padding convention
(in = input size, k_eff = dilation * (kernel - 1) + 1, s = stride, per spatial dimension):

conv
  numeric symmetric P      F.conv*d(padding=P)
  numeric BEGIN:END        F.pad(x, BEGIN, END) then F.conv*d(padding=0)
  'valid'                  F.conv*d(padding=0)
  'same' with stride 1     F.conv*d(padding='same')  (PyTorch: total d*(k-1), odd element at the end, as TF)
  'same' otherwise         TensorFlow's rule: out = ceil(in / s), total = max((out - 1) * s + k_eff - in, 0),
                           begin = total // 2, end = total - begin  -> F.pad then F.conv*d
  'same_upper'/'same_lower' ONNX 1.12 Conv auto_pad (defs.cc shape inference): residual = in % s,
                           total = k_eff - s if residual == 0 else k_eff - residual, clamped at 0;
                           small = total // 2, big = total - small; upper: begin = small, end = big;
                           lower: begin = big, end = small  (same_upper == TF 'same')

conv-transpose: "full" = F.conv_transpose*d(padding=0, output_padding=0, no bias), (in - 1) * s + k_eff
elements per dim.  Every convention is a window of the full output, extended with zeros past its end:
y = window(full, start, length) + bias.
  numeric symmetric P, output_padding OP   F.conv_transpose*d(padding=P, output_padding=OP) directly
  numeric BEGIN:END (+ OP)                 start = BEGIN, length = full - BEGIN - END + OP
  --output-size O with numeric padding     PyTorch's ConvTranspose*d module forward(x, output_size=O) when O is
                                           within PyTorch's range (min .. min + stride - 1); the contract also allows
                                           up to min + max(stride, dilation) - 1, compared with
                                           F.conv_transpose*d(output_padding=O - min) (the same thing)
  'valid'                   TF: length = in * s + max(k_eff - s, 0), start = 0
  'valid' + output size O   TF output_shape: O in [(in-1)*s + k_eff, in*s + k_eff - 1]; start = 0, length = O
  'same'                    TF: length = in * s, start = max(k_eff - s, 0) // 2
  'same' + output size O    TF output_shape (gradient of a 'same' conv of an O input): O in [(in-1)*s + 1, in*s];
                            total = max((in - 1) * s + k_eff - O, 0), start = total // 2, length = O
  'same_upper'/'same_lower' ONNX 1.12 ConvTranspose: O = in * s unless --output-size;
                            total = (in - 1) * s + k_eff - O; upper: start = total // 2, lower: start = total - total // 2;
                            total < 0: start = 0, the output is extended with zeros at the end (contract)
"""

import argparse
import math
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
warnings.filterwarnings("ignore")  # e.g. PyTorch's note on padding='same' with even kernels

CASE_SEED_BASE = 20240611
NUM_CASES = 1500
TIMEOUT_S = 60

CONV_F = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONVT_F = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
CONVT_MOD = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


class Invalid(Exception):
    """The generated parameters are not a valid problem; generate another one."""


# ----------------------------------------------------------------------------------------------- generation

def pick(rng, weighted):
    """weighted: list of (value, weight)."""
    total = sum(w for _, w in weighted)
    r = rng.random() * total
    for v, w in weighted:
        r -= w
        if r < 0:
            return v
    return weighted[-1][0]


def per_dim(rng, nd, lo, hi, p_uniform=0.5):
    if rng.random() < p_uniform:
        return [rng.randint(lo, hi)] * nd
    return [rng.randint(lo, hi) for _ in range(nd)]


def list_arg(rng, vals):
    """'2' when all equal (sometimes), else '2,1,3'."""
    if len(set(vals)) == 1 and rng.random() < 0.6:
        return str(vals[0])
    return ",".join(str(v) for v in vals)


def keff_of(k, d):
    return [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]


def gen_params(rng):
    p = {}
    op = p["op"] = pick(rng, [("conv", 1), ("conv-transpose", 1)])
    nd = p["nd"] = pick(rng, [(1, 35), (2, 40), (3, 25)])
    p["N"] = rng.randint(1, 3)
    gstyle = p["group_style"] = pick(rng, [("single", 45), ("grouped", 30), ("depthwise", 25)])
    # A few larger problems, so that blocked / vectorised code paths of the implementation get exercised too.
    big = p["big"] = rng.random() < 0.05
    maxc = (6 if nd < 3 else 4) if not big else (16 if nd < 3 else 8)
    if gstyle == "single":
        g = 1
        in_pg, out_pg = rng.randint(1, maxc), rng.randint(1, maxc)
    elif gstyle == "grouped":
        g = rng.randint(2, 4)
        in_pg, out_pg = rng.randint(1, maxc), rng.randint(1, maxc)
    else:  # depthwise: one input channel per group, channel multiplier 1..3
        g = rng.randint(1, 6)
        in_pg, out_pg = 1, pick(rng, [(1, 3), (2, 1), (3, 1)])
    p["groups"] = g
    p["C_in"], p["C_out"] = g * in_pg, g * out_pg

    kmax = 5 if nd < 3 else pick(rng, [(3, 3), (5, 1)])
    p["kernel"] = per_dim(rng, nd, 1, kmax)
    p["stride"] = per_dim(rng, nd, 1, 4) if rng.random() < 0.7 else [1] * nd
    p["dilation"] = per_dim(rng, nd, 1, 3) if rng.random() < 0.5 else [1] * nd
    p["dtype"] = pick(rng, [("float64", 75), ("float32", 25)])
    p["bias"] = rng.random() < 0.6
    p["layout"] = pick(rng, [("channels_first", 1), ("channels_last", 1)])
    p["weight_layout"] = pick(rng, [("torch", 1), ("tf", 1)])
    k, s, d = p["kernel"], p["stride"], p["dilation"]
    ke = keff_of(k, d)
    size_hi = {1: 24, 2: 11, 3: 6}[nd] if not big else {1: 200, 2: 40, 3: 12}[nd]

    if op == "conv":
        mode = p["mode"] = pick(rng, [("num_sym", 35), ("num_asym", 20), ("valid", 10), ("same", 15),
                                      ("same_upper", 10), ("same_lower", 10)])
        if mode == "num_sym":
            pad = [rng.randint(0, ke[i] + 2) for i in range(nd)] if rng.random() < 0.6 else [rng.randint(0, 3)] * nd
            p["pads"] = [(x, x) for x in pad]
        elif mode == "num_asym":
            p["pads"] = [(rng.randint(0, ke[i] + 1), rng.randint(0, ke[i] + 1)) for i in range(nd)]
        lo = []
        for i in range(nd):
            need = ke[i] - (sum(p["pads"][i]) if "pads" in p else 0) if mode in ("num_sym", "num_asym", "valid") else 1
            lo.append(max(1, need))
        p["in_size"] = [rng.randint(lo[i], max(lo[i], size_hi) + 3) for i in range(nd)]
    else:
        mode = p["mode"] = pick(rng, [("num_sym", 35), ("num_asym", 10), ("num_outsize", 10), ("valid", 8),
                                      ("same", 10), ("same_upper", 6), ("same_lower", 6), ("valid_outsize", 5),
                                      ("same_outsize", 5), ("onnx_outsize", 5)])
        p["in_size"] = [rng.randint(1, size_hi - (2 if nd == 3 else 0)) for _ in range(nd)]
        full = [(p["in_size"][i] - 1) * s[i] + ke[i] for i in range(nd)]
        ext = [max(s[i], d[i]) for i in range(nd)]  # output_padding < max(stride, dilation)
        if mode in ("num_sym", "num_asym", "num_outsize"):
            if mode == "num_asym":
                pads = [(rng.randint(0, ke[i]), rng.randint(0, ke[i])) for i in range(nd)]
            else:
                pad = [rng.randint(0, max(0, ke[i] - 1) + (1 if rng.random() < 0.2 else 0)) for i in range(nd)]
                pads = [(x, x) for x in pad]
            # keep at least one output element before output padding
            pads = [(b, e) if full[i] - b - e >= 1 else (0, 0) for i, (b, e) in enumerate(pads)]
            p["pads"] = pads
            minsz = [full[i] - pads[i][0] - pads[i][1] for i in range(nd)]
            if mode == "num_outsize" or (mode == "num_asym" and rng.random() < 0.3):
                p["output_size"] = [minsz[i] + rng.randint(0, ext[i] - 1) for i in range(nd)]
            elif rng.random() < 0.5:
                p["output_padding"] = [rng.randint(0, ext[i] - 1) for i in range(nd)]
        elif mode == "valid_outsize":
            p["output_size"] = [rng.randint(full[i], p["in_size"][i] * s[i] + ke[i] - 1) for i in range(nd)]
        elif mode == "same_outsize":
            p["output_size"] = [rng.randint((p["in_size"][i] - 1) * s[i] + 1, p["in_size"][i] * s[i])
                                for i in range(nd)]
        elif mode == "onnx_outsize":
            p["onnx_kind"] = pick(rng, [("same_upper", 1), ("same_lower", 1)])
            p["output_size"] = [rng.randint(max(1, p["in_size"][i] * s[i] - ke[i] - 2), full[i] + ext[i] - 1)
                                for i in range(nd)]
    return p


def padding_arg(rng, p):
    mode = p["mode"]
    if mode in ("valid", "same", "same_upper", "same_lower"):
        return mode
    if mode == "valid_outsize":
        return "valid"
    if mode == "same_outsize":
        return "same"
    if mode == "onnx_outsize":
        return p["onnx_kind"]
    pads = p["pads"]
    if all(b == e for b, e in pads):
        form = pick(rng, [("auto", 6), ("colon", 2), ("mixed", 1)])
        if form == "auto":
            return list_arg(rng, [b for b, _ in pads])
        if form == "colon":
            return ",".join("%d:%d" % be for be in pads)
        return ",".join(("%d" % b) if i % 2 == 0 else ("%d:%d" % (b, e)) for i, (b, e) in enumerate(pads))
    if len(set(pads)) == 1 and rng.random() < 0.3:
        return "%d:%d" % pads[0]  # one item applies to every dimension
    return ",".join("%d:%d" % be for be in pads)


# ----------------------------------------------------------------------------------------------- reference

def window(full, starts, lengths):
    """full[..., start:start+length] per spatial dim, zero-extended past the end (starts >= 0)."""
    nd = len(starts)
    out = full
    for i in range(nd):
        ax = 2 + i
        n = out.shape[ax]
        st, ln = starts[i], lengths[i]
        if st < 0 or ln < 1:
            raise Invalid("window start %d length %d" % (st, ln))
        take = out.narrow(ax, min(st, n), max(0, min(n - st, ln)))
        if take.shape[ax] < ln:
            shape = list(take.shape)
            shape[ax] = ln - take.shape[ax]
            take = torch.cat([take, torch.zeros(shape, dtype=take.dtype)], dim=ax)
        out = take
    return out


def add_bias(y, b):
    if b is None:
        return y
    return y + b.view([1, -1] + [1] * (y.dim() - 2))


def fpad(x, pads):
    flat = []
    for b, e in reversed(pads):  # F.pad takes the last dimension first
        flat += [b, e]
    return F.pad(x, flat)


def conv_keyword_pads(p):
    nd, s, ke, n = p["nd"], p["stride"], keff_of(p["kernel"], p["dilation"]), p["in_size"]
    pads = []
    for i in range(nd):
        mode = p["mode"]
        if mode == "valid":
            pads.append((0, 0))
            continue
        if mode == "same":  # TensorFlow
            out = -(-n[i] // s[i])
            total = max((out - 1) * s[i] + ke[i] - n[i], 0)
            pads.append((total // 2, total - total // 2))
            continue
        residual = n[i] % s[i]  # ONNX 1.12 Conv auto_pad
        total = ke[i] - s[i] if residual == 0 else ke[i] - residual
        total = max(total, 0)
        small, big = total // 2, total - total // 2
        pads.append((small, big) if mode == "same_upper" else (big, small))
    return pads


def reference(p, x, w, b):
    """x, w, b: float64 torch tensors in torch layout; returns the float64 output in channels_first."""
    nd, s, d, g = p["nd"], p["stride"], p["dilation"], p["groups"]
    mode = p["mode"]
    ke = keff_of(p["kernel"], d)
    if p["op"] == "conv":
        conv = CONV_F[nd]
        if mode == "num_sym":
            return conv(x, w, b, stride=s, padding=[bb for bb, _ in p["pads"]], dilation=d, groups=g)
        if mode == "num_asym":
            return conv(fpad(x, p["pads"]), w, b, stride=s, padding=0, dilation=d, groups=g)
        if mode == "same" and all(v == 1 for v in s):
            return conv(x, w, b, stride=1, padding="same", dilation=d, groups=g)
        return conv(fpad(x, conv_keyword_pads(p)), w, b, stride=s, padding=0, dilation=d, groups=g)

    convt = CONVT_F[nd]
    n = p["in_size"]
    if mode == "num_sym" and "output_size" not in p:
        op = p.get("output_padding", [0] * nd)
        return convt(x, w, b, stride=s, padding=[bb for bb, _ in p["pads"]], output_padding=op, groups=g,
                     dilation=d)
    if mode == "num_outsize" and all(bb == e for bb, e in p["pads"]):
        pad = [bb for bb, _ in p["pads"]]
        minsz = [(n[i] - 1) * s[i] + ke[i] - 2 * pad[i] for i in range(nd)]
        extra = [p["output_size"][i] - minsz[i] for i in range(nd)]
        if all(extra[i] <= s[i] - 1 for i in range(nd)):  # within PyTorch's output_size range
            m = CONVT_MOD[nd](p["C_in"], p["C_out"], p["kernel"], stride=s, padding=pad, dilation=d, groups=g,
                              bias=b is not None).double()
            with torch.no_grad():
                m.weight.copy_(w)
                if b is not None:
                    m.bias.copy_(b)
                return m(x, output_size=p["output_size"])
        return convt(x, w, b, stride=s, padding=pad, output_padding=extra, groups=g, dilation=d)

    full = convt(x, w, None, stride=s, padding=0, groups=g, dilation=d)
    starts, lengths = [], []
    for i in range(nd):
        fl = (n[i] - 1) * s[i] + ke[i]
        assert full.shape[2 + i] == fl
        if mode in ("num_asym", "num_sym", "num_outsize"):
            bb, e = p["pads"][i]
            starts.append(bb)
            if "output_size" in p:
                lengths.append(p["output_size"][i])
            else:
                lengths.append(fl - bb - e + p.get("output_padding", [0] * nd)[i])
        elif mode == "valid":
            starts.append(0)
            lengths.append(n[i] * s[i] + max(ke[i] - s[i], 0))
        elif mode == "valid_outsize":
            starts.append(0)
            lengths.append(p["output_size"][i])
        elif mode == "same":
            starts.append(max(ke[i] - s[i], 0) // 2)
            lengths.append(n[i] * s[i])
        elif mode == "same_outsize":
            o = p["output_size"][i]
            starts.append(max((n[i] - 1) * s[i] + ke[i] - o, 0) // 2)
            lengths.append(o)
        else:  # ONNX same_upper / same_lower, with or without output_shape
            kind = p.get("onnx_kind", mode)
            o = p["output_size"][i] if "output_size" in p else n[i] * s[i]
            total = (n[i] - 1) * s[i] + ke[i] - o
            if total < 0:
                starts.append(0)
            else:
                starts.append(total // 2 if kind == "same_upper" else total - total // 2)
            lengths.append(o)
    return add_bias(window(full, starts, lengths), b)


# ----------------------------------------------------------------------------------------------- one case

def make_case(index):
    """Returns (params, rng-for-cli-forms, x, w, b, expected) with torch-layout float64 tensors."""
    rng = random.Random(CASE_SEED_BASE + index)
    for _attempt in range(200):
        p = gen_params(rng)
        gen = torch.Generator().manual_seed(CASE_SEED_BASE + index)
        nd = p["nd"]
        x = torch.randn([p["N"], p["C_in"]] + p["in_size"], generator=gen, dtype=torch.float64)
        if p["op"] == "conv":
            wshape = [p["C_out"], p["C_in"] // p["groups"]] + p["kernel"]
        else:
            wshape = [p["C_in"], p["C_out"] // p["groups"]] + p["kernel"]
        w = torch.randn(wshape, generator=gen, dtype=torch.float64)
        b = torch.randn([p["C_out"]], generator=gen, dtype=torch.float64) if p["bias"] else None
        if p["dtype"] == "float32":  # the float32 values, exactly representable in float64
            x, w = x.float().double(), w.float().double()
            b = b.float().double() if b is not None else None
        try:
            with torch.no_grad():
                y = reference(p, x, w, b)
        except (RuntimeError, ValueError, Invalid):
            continue
        if y.numel() == 0 or any(v < 1 for v in y.shape[2:]) or y.numel() > 400000:
            continue
        return p, rng, x, w, b, y
    raise RuntimeError("case %d: could not generate a valid problem" % index)


def to_np(t, dtype):
    return np.ascontiguousarray(t.numpy().astype(dtype))


def build_command(tdconv, p, rng, files):
    nd = p["nd"]
    opts = [["--input", files["x"]], ["--weight", files["w"]], ["--output", files["y"]]]
    if p["bias"]:
        opts.append(["--bias", files["b"]])
    if any(v != 1 for v in p["stride"]) or rng.random() < 0.5:
        opts.append(["--stride", list_arg(rng, p["stride"])])
    if any(v != 1 for v in p["dilation"]) or rng.random() < 0.5:
        opts.append(["--dilation", list_arg(rng, p["dilation"])])
    pad = padding_arg(rng, p)
    if pad != "0" or rng.random() < 0.5:
        opts.append(["--padding", pad])
    if p["groups"] != 1 or rng.random() < 0.5:
        opts.append(["--groups", str(p["groups"])])
    if p["layout"] != "channels_first" or rng.random() < 0.5:
        opts.append(["--layout", p["layout"]])
    if p["weight_layout"] != "torch" or rng.random() < 0.5:
        opts.append(["--weight-layout", p["weight_layout"]])
    if "output_padding" in p:
        opts.append(["--output-padding", list_arg(rng, p["output_padding"])])
    if "output_size" in p:
        opts.append(["--output-size", list_arg(rng, p["output_size"])])
    if rng.random() < 0.3:  # options may come in any order
        rng.shuffle(opts)
    return [tdconv, p["op"]] + [a for pair in opts for a in pair]


def describe(p):
    keys = ["op", "nd", "big", "dtype", "N", "C_in", "C_out", "groups", "group_style", "in_size", "kernel", "stride",
            "dilation", "mode", "pads", "output_padding", "output_size", "onnx_kind", "bias", "layout",
            "weight_layout"]
    return " ".join("%s=%s" % (k, str(p[k]).replace(" ", "")) for k in keys if k in p)


def run_case(index, tdconv, workdir, stats):
    p, rng, x, w, b, y_ref = make_case(index)
    nd = p["nd"]
    np_dtype = "<f8" if p["dtype"] == "float64" else "<f4"
    xs = x.permute([0] + list(range(2, nd + 2)) + [1]) if p["layout"] == "channels_last" else x
    ws = w.permute(list(range(2, nd + 2)) + [1, 0]) if p["weight_layout"] == "tf" else w
    os.makedirs(workdir, exist_ok=True)
    files = {k: os.path.join(workdir, "c%d_%s.npy" % (index, k)) for k in "xwby"}
    np.save(files["x"], to_np(xs, np_dtype))
    np.save(files["w"], to_np(ws, np_dtype))
    if b is not None:
        np.save(files["b"], to_np(b, np_dtype))
    cmd = build_command(tdconv, p, rng, files)
    for key in ("mode", "group_style", "nd", "dtype", "layout", "weight_layout", "op"):
        stats.setdefault("%s=%s" % (key, p[key]), 0)
        stats["%s=%s" % (key, p[key])] += 1
    feats = []
    if p["op"] == "conv" and p["mode"] == "num_sym" and any(bb > kk for (bb, _), kk in zip(p["pads"], p["kernel"])):
        feats.append("conv_pad_gt_kernel")
    if any(sv > kv for sv, kv in zip(p["stride"], p["kernel"])):
        feats.append("stride_gt_kernel")
    if any(v > 0 for v in p.get("output_padding", [])):
        feats.append("output_padding")
    if any(v >= sv for v, sv in zip(p.get("output_padding", []), p["stride"])):
        feats.append("output_padding>=stride")  # allowed because dilation > stride
    if p["mode"] in ("num_outsize", "num_asym") and "output_size" in p:
        ke = keff_of(p["kernel"], p["dilation"])
        extra = [o - ((n - 1) * sv + kv - b - e) for o, n, sv, kv, (b, e) in
                 zip(p["output_size"], p["in_size"], p["stride"], ke, p["pads"])]
        if any(x >= sv for x, sv in zip(extra, p["stride"])):
            feats.append("output_size_beyond_torch_range")
    if p["bias"]:
        feats.append("bias")
    if any(v > 1 for v in p["dilation"]):
        feats.append("dilation>1")
    if p["big"]:
        feats.append("big")
    if p["groups"] > 1:
        feats.append("groups>1")
    for f in feats:
        stats[f] = stats.get(f, 0) + 1

    def fail(reason):
        return "FAIL case %d: %s\n  params: %s\n  command: %s\n  rerun: /usr/bin/python3 %s %s --seed %d --case %d --keep DIR" % (
            index, reason, describe(p), " ".join(shlex.quote(c) for c in cmd), shlex.quote(os.path.abspath(__file__)),
            shlex.quote(tdconv), CASE_SEED_BASE, index)

    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return fail("timed out after %d s" % TIMEOUT_S)
    if r.returncode != 0:
        return fail("exit status %d, stderr: %s" % (r.returncode, r.stderr.decode(errors="replace").strip()))
    try:
        out = np.load(files["y"])
    except Exception as e:  # noqa: BLE001 - any unreadable output is a failure
        return fail("cannot read output: %s" % e)
    if out.dtype != np.dtype(np_dtype):
        return fail("output dtype %s, expected %s" % (out.dtype.str, np_dtype))
    if p["layout"] == "channels_last":
        out = np.transpose(out, [0, nd + 1] + list(range(1, nd + 1))) if out.ndim == nd + 2 else out
    ref = y_ref.numpy()
    if out.shape != ref.shape:
        return fail("output shape %s (channels_first view), expected %s" % (out.shape, ref.shape))
    out64 = out.astype(np.float64)
    err = float(np.max(np.abs(out64 - ref))) if ref.size else 0.0
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    tol = 1e-10 * max(scale, 1.0) if p["dtype"] == "float64" else 1e-4 * scale
    if not np.isfinite(out64).all() or not err <= tol:
        idx = np.unravel_index(int(np.argmax(np.abs(out64 - ref))), ref.shape) if np.isfinite(out64).all() else None
        return fail("max abs error %.3g > tolerance %.3g (max |ref| %.3g)%s" % (
            err, tol, scale, "" if idx is None else ", worst at %s: got %r expected %r" % (
                tuple(int(v) for v in idx), float(out64[idx]), float(ref[idx]))))
    return None


REQUIRED_FEATURES = [
    "op=conv", "op=conv-transpose", "nd=1", "nd=2", "nd=3", "dtype=float64", "dtype=float32",
    "group_style=single", "group_style=grouped", "group_style=depthwise", "layout=channels_first",
    "layout=channels_last", "weight_layout=torch", "weight_layout=tf", "mode=num_sym", "mode=num_asym",
    "mode=valid", "mode=same", "mode=same_upper", "mode=same_lower", "mode=num_outsize", "mode=valid_outsize",
    "mode=same_outsize", "mode=onnx_outsize", "conv_pad_gt_kernel", "stride_gt_kernel", "output_padding", "bias",
    "groups>1", "dilation>1", "big", "output_padding>=stride", "output_size_beyond_torch_range",
]


def main():
    global CASE_SEED_BASE
    ap = argparse.ArgumentParser()
    ap.add_argument("tdconv")
    ap.add_argument("--case", type=int, action="append", help="run only this case index (repeatable)")
    ap.add_argument("--count", type=int, default=NUM_CASES)
    ap.add_argument("--seed", type=int, default=CASE_SEED_BASE, help="seed base (exploration; ctest uses the default)")
    ap.add_argument("--keep", help="write the case files here and keep them")
    args = ap.parse_args()
    CASE_SEED_BASE = args.seed
    tdconv = os.path.abspath(args.tdconv)
    indices = args.case if args.case else list(range(args.count))
    workdir = args.keep if args.keep else tempfile.mkdtemp(prefix="tdconv_torch_")
    passed = failed = 0
    stats = {}
    t0 = time.time()
    try:
        for i in indices:
            try:
                msg = run_case(i, tdconv, workdir, stats)
            except Exception as e:  # noqa: BLE001 - a crash of the harness on one case is a failure of that case
                msg = "FAIL case %d: test harness error %s: %s" % (i, type(e).__name__, e)
            if msg is None:
                passed += 1
            else:
                failed += 1
                print(msg, flush=True)
            if not args.keep:
                for f in os.listdir(workdir):
                    os.unlink(os.path.join(workdir, f))
        if not args.case:
            missing = [f for f in REQUIRED_FEATURES if not stats.get(f)]
            if missing:
                failed += 1
                print("FAIL coverage: the generator produced no case with %s" % ", ".join(missing))
        print("coverage: " + ", ".join("%s:%d" % (k, stats[k]) for k in sorted(stats)))
        print("time: %.1f s" % (time.time() - t0))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

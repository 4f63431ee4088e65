#!/usr/bin/python3
"""PyTorch peer of tdconv-bench: times F.conv*d / F.conv_transpose*d on the layers it is given.

Run by tdconv-bench as  /usr/bin/python3 torch_peer.py --serve --threads N  (or --probe), with
MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184 (PyTorch allocates its output on every call;
a fixed mmap threshold keeps glibc's timing independent of what ran before) and OPENBLAS_NUM_THREADS=1 (Debian's
PyTorch 1.13 runs transposed convolutions through im2col + OpenBLAS, whose threads otherwise fight its OpenMP pool
over the cores). See shared/docs/BENCHMARKING.md.

--serve answers requests, one JSON object per line on stdin, one JSON answer per line on stdout, until stdin
closes, so that tdconv-bench can time PyTorch in turns with tdconv and oneDNN (one call per "run" request):
  {"cmd": "setup", "layout": "channels_first" | "channels_last",
   "layer": {"name", "op": "conv" | "conv_transpose", "spatial_dims", "batch", "in_channels", "out_channels",
             "groups", "input", "kernel", "stride", "dilation", "pad_begin", "pad_end", "output_padding",
             "output": expected spatial output size,
             "src_file", "weights_file": raw float32 in the layer's layout and torch's weight layout (optional:
             random data when absent), "dst_file": where to write the output for the caller to check (optional)}}
      builds the inputs and the call, runs it once (warm-up), checks the output's shape, writes dst_file;
      answers {"call": what is called} or {"error": why not}
      With "pass": "backward" and "diff_dst_file" (the output's gradient, raw float32 in the layer's layout), the
      setup runs the call once with autograd recording and dst_file receives both gradients: the input's (the
      layer's layout) followed by the weights' (torch's layout).
  {"cmd": "run"}
      calls the layer set up last once; answers {"ms": the call's time in milliseconds} or {"error": ...}

Timed: exactly what a PyTorch user writes for the layer, under torch.no_grad():
  conv, symmetric padding P:            F.convNd(x, w, None, stride, P, dilation, groups)
  conv, padding BEGIN != END:           F.pad(x, the part of the padding beyond min(BEGIN, END)), then F.convNd with
                                        padding min(BEGIN, END)  (PyTorch's convolutions pad symmetrically only)
  conv_transpose, symmetric P, OP:      F.conv_transposeNd(x, w, None, stride, P, OP, groups, dilation)
  conv_transpose, BEGIN != END:         F.conv_transposeNd with padding m = min(BEGIN, END) and the output padding
                                        OP' = max(0, OP - (END - m)), then a slice crops the rest (a view: no copy)
Backward: torch.autograd.grad(y, (x, w), dy, retain_graph=True) on the recorded call above (x and w requiring
grad, no bias): both gradients, the forward pass not timed (what loss.backward() runs for the layer).
channels_last: activations and weights in torch.channels_last (2D) / channels_last_3d (3D) memory format. PyTorch
has no channels-last 1D format, so 1D layers run as 2D with a height of 1 (as Conv1d does internally), whose
channels_last memory is exactly (N, W, C).
"""

import argparse
import json
import sys
import time


def probe():
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any failure to import means the peer is unavailable
        return {"available": False, "reason": f"cannot import torch under {sys.executable}: {e}"}
    return {"available": True, "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
            "python": sys.executable, "blas": loaded_blas()}


def loaded_blas():
    """Which BLAS the process mapped: Debian's PyTorch calls whatever libblas.so.3 the alternatives system points
    to, and its transposed convolutions (im2col + GEMM) are far slower on the reference BLAS than on OpenBLAS."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line})
    except OSError:
        return "unknown"
    for path in paths:
        if "openblas" in path.lower():
            return f"OpenBLAS ({path})"
        if "blis" in path.lower():
            return f"BLIS ({path})"
    for path in paths:
        if "/blas/libblas.so" in path:
            return f"reference BLAS ({path}): slow; install libopenblas0-pthread"
    return ", ".join(paths) or "none mapped"


class Layer:
    """One layer of the request, with the geometry PyTorch's calls need."""

    def __init__(self, spec, layout):
        self.spec = spec
        self.name = spec["name"]
        self.nd = spec["spatial_dims"]
        self.transposed = spec["op"] == "conv_transpose"
        self.channels_last = layout == "channels_last"
        # 1D channels-last runs as 2D with height 1 (see the module docstring).
        self.as_2d = self.channels_last and self.nd == 1
        self.run_nd = 2 if self.as_2d else self.nd

    def dims(self, key):
        values = list(self.spec[key][: self.nd])
        return [1] + values if self.as_2d else values

    def padding(self, key):
        values = list(self.spec[key][: self.nd])
        return [0] + values if self.as_2d else values


def load(path, count, shape, torch, np):
    if path is None:
        return torch.rand(*shape) * 2 - 1
    data = np.fromfile(path, dtype=np.float32)
    if data.size != count:
        raise ValueError(f"{path}: {data.size} floats, expected {count}")
    return torch.from_numpy(data.reshape(shape))


def load_activation(layer, path, channels, size, torch, np):
    """An activation from the caller's raw file (the layer's layout; random when path is None), as a logical
    (N, C, spatial...) tensor in the layer's memory format (1D channels-last as 2D, height 1)."""
    s = layer.spec
    spatial = list(size[: layer.nd])
    count = s["batch"] * channels
    for v in spatial:
        count *= v
    if layer.channels_last:
        t = load(path, count, [s["batch"], *spatial, channels], torch, np)
        t = t.permute(0, layer.nd + 1, *range(1, layer.nd + 1))  # logical NC..., channels-last strides
    else:
        t = load(path, count, [s["batch"], channels, *spatial], torch, np)
    if layer.as_2d:
        t = t.unsqueeze(2)
    return to_format(layer, t, torch)


def make_input(layer, torch, np):
    s = layer.spec
    return load_activation(layer, s.get("src_file"), s["in_channels"], s["input"], torch, np)


def make_weights(layer, torch, np):
    s = layer.spec
    g = s["groups"]
    if layer.transposed:
        shape = [s["in_channels"], s["out_channels"] // g, *s["kernel"][: layer.nd]]
    else:
        shape = [s["out_channels"], s["in_channels"] // g, *s["kernel"][: layer.nd]]
    count = 1
    for v in shape:
        count *= v
    w = load(s.get("weights_file"), count, shape, torch, np)
    if layer.as_2d:
        w = w.unsqueeze(2)
    return to_format(layer, w, torch)


def to_format(layer, t, torch):
    if not layer.channels_last:
        return t.contiguous()
    fmt = torch.channels_last if layer.run_nd == 2 else torch.channels_last_3d
    return t.contiguous(memory_format=fmt)


def build_call(layer, x, w, torch):
    """Returns (function computing the output, description of the call)."""
    import torch.nn.functional as F

    s = layer.spec
    nd = layer.run_nd
    stride, dilation, groups = layer.dims("stride"), layer.dims("dilation"), s["groups"]
    begin, end = layer.padding("pad_begin"), layer.padding("pad_end")
    common = [min(b, e) for b, e in zip(begin, end)]
    if not layer.transposed:
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
        extra = []  # F.pad's order: last dimension first, (begin, end) each
        for b, e, m in reversed(list(zip(begin, end, common))):
            extra += [b - m, e - m]
        if any(extra):
            call = f"F.pad(x, {extra}); F.conv{nd}d(padding={common})"
            return (lambda: conv(F.pad(x, extra), w, None, stride, common, dilation, groups)), call
        return (lambda: conv(x, w, None, stride, common, dilation, groups)), f"F.conv{nd}d(padding={common})"

    convt = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]
    out_pad = layer.padding("output_padding")
    tail = [max(0, op - (e - m)) for op, e, m in zip(out_pad, end, common)]
    crops = [(b - m, e - m + t - op) for b, e, m, t, op in zip(begin, end, common, tail, out_pad)]
    call = f"F.conv_transpose{nd}d(padding={common}, output_padding={tail})"
    if not any(c for pair in crops for c in pair):
        return (lambda: convt(x, w, None, stride, common, tail, groups, dilation)), call

    def cropped():
        y = convt(x, w, None, stride, common, tail, groups, dilation)
        index = [slice(None), slice(None)]
        for d, (cb, ce) in enumerate(crops):
            index.append(slice(cb, y.shape[2 + d] - ce))
        return y[tuple(index)]

    return cropped, call + f" then crop {crops}"


def to_caller_layout(layer, y):
    """The output as the caller stores it: (N, C, spatial...) or (N, spatial..., C), contiguous."""
    if layer.as_2d:
        y = y.squeeze(2)
    if layer.channels_last:
        y = y.permute(0, *range(2, layer.nd + 2), 1)
    return y.contiguous()


def make_grad_output(layer, like, torch, np):
    """The output's gradient from the caller's file (the layer's layout), in the output's shape and memory format."""
    s = layer.spec
    dy = load_activation(layer, s["diff_dst_file"], s["out_channels"], s["output"], torch, np)
    if list(dy.shape) != list(like.shape):
        raise ValueError(f"the output's gradient has shape {list(dy.shape)}, the output {list(like.shape)}")
    return dy


def weights_in_torch_layout(layer, gw):
    if layer.as_2d:
        gw = gw.squeeze(2)
    return gw.contiguous()


class Session:
    """The layer set up last: its call, ready to be timed."""

    def __init__(self, torch, np):
        self.torch = torch
        self.np = np
        self.call = None
        self.grad = False  # the call differentiates (backward pass)
        self.y = None  # the last output, kept until the next call replaces it (as a loop over calls would)
        # Big enough for ATen to split over its OpenMP threads (its grain is 32768 elements): adding to it wakes
        # them before a timed call, as tdconv-bench wakes its own (timing.cpp).
        self.wake = torch.zeros(1 << 17)

    def setup(self, spec, layout):
        torch = self.torch
        self.call = self.y = None
        layer = Layer(spec, layout)
        backward = spec.get("pass", "forward") == "backward"
        x = make_input(layer, torch, self.np)
        w = make_weights(layer, torch, self.np)
        if backward:
            x.requires_grad_(True)
            w.requires_grad_(True)
        f, call = build_call(layer, x, w, torch)
        if layer.channels_last:
            call += " channels_last" + (" (1D as 2D, height 1)" if layer.as_2d else "")
        with torch.set_grad_enabled(backward):
            y = f()  # warm-up (backward: the recorded graph the timed runs differentiate)
        expected = [spec["batch"], spec["out_channels"], *spec["output"][: layer.nd]]
        got = list(y.shape)
        if layer.as_2d:
            got = got[:2] + got[3:]
        if got != expected:
            return {"error": f"PyTorch's output has shape {got}, expected {expected}", "call": call}
        if backward:
            dy = make_grad_output(layer, y, torch, self.np)

            def gradients():
                return torch.autograd.grad(y, (x, w), dy, retain_graph=True)

            gx, gw = gradients()  # warm-up
            if spec.get("dst_file"):
                with open(spec["dst_file"], "wb") as out:
                    to_caller_layout(layer, gx).numpy().tofile(out)
                    weights_in_torch_layout(layer, gw).numpy().tofile(out)
            self.call, self.y, self.grad = gradients, (gx, gw), True
            return {"call": "autograd.grad(" + call + ", (x, w))"}
        if spec.get("dst_file"):
            to_caller_layout(layer, y).numpy().tofile(spec["dst_file"])
        self.call, self.y, self.grad = f, y, False
        return {"call": call}

    def run(self):
        if self.call is None:
            return {"error": "no layer is set up"}
        with self.torch.set_grad_enabled(self.grad):
            with self.torch.no_grad():
                self.wake.add_(1.0)
            t0 = time.perf_counter()
            self.y = self.call()
            dt = time.perf_counter() - t0
        return {"ms": dt * 1e3}


def warm_up_blas(torch):
    """One small matrix product before any layer. In a fresh process, OpenBLAS 0.3.21's single-threaded sgemm ran the
    im2col products of U-Net up1 and HiFi-GAN up1 (2048 x 1024 x 256, 4096 x 512 x 256) at a third of its speed
    until some other product had run: both layers took 92-97 ms in four fresh processes and 32-35 ms in 8 of 9 that
    had first multiplied two 512 x 512 matrices (1 thread, this helper's environment). A network's later layers
    meet the second state, so every layer is timed in it (see bench/README.md)."""
    a = torch.ones(512, 512)
    torch.mm(a, a)


def serve(threads):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    warm_up_blas(torch)
    session = Session(torch, np)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            cmd = request.get("cmd")
            if cmd == "setup":
                answer = session.setup(request["layer"], request["layout"])
            elif cmd == "run":
                answer = session.run()
            else:
                answer = {"error": f"unknown request {cmd!r}"}
        except Exception as e:  # noqa: BLE001 - one failing layer must not end the others' measurements
            session.call = session.y = None
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", action="store_true", help="say whether torch imports, and its version")
    parser.add_argument("--serve", action="store_true", help="answer requests on stdin (see above)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch's threads (with --serve)")
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe()))
        return 0
    if args.serve:
        return serve(args.threads)
    parser.error("give --probe or --serve")  # exits with status 2


if __name__ == "__main__":
    sys.exit(main())

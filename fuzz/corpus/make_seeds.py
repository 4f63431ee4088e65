#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (run once; the files are committed, so this is only for regenerating
them): valid and hostile .npy files for npy_fuzz (made with NumPy, then damaged by hand), argument vectors for
cli_fuzz (one argument per line), and byte strings for diff_fuzz. Every file stays below 4 KB."""
import io
import os
import random
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    assert len(data) < 4096, (name, len(data))
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def npy(array, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array)
    else:
        np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


def raw(header, data=b"", version=(1, 0)):
    """A .npy file with a hand-written header dict (padded to 64 bytes like NumPy's)."""
    header = header.encode() if isinstance(header, str) else header
    length_size = 2 if version == (1, 0) else 4
    prefix = 6 + 2 + length_size
    total = prefix + len(header) + 1
    header += b" " * ((64 - total % 64) % 64) + b"\n"
    fmt = "<H" if length_size == 2 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(header)) + header + data


def npy_seeds():
    rng = np.random.default_rng(7)
    t = "npy_fuzz"
    write(t, "f32_2d.npy", npy(rng.standard_normal((2, 3)).astype("<f4")))
    write(t, "f64_1d.npy", npy(rng.standard_normal(5).astype("<f8")))
    write(t, "f32_4d.npy", npy(rng.standard_normal((1, 2, 3, 3)).astype("<f4")))
    write(t, "f32_0d.npy", npy(np.array(1.5, dtype="<f4")))
    write(t, "f64_empty.npy", npy(np.zeros((0, 3), dtype="<f8")))
    write(t, "f32_v2.npy", npy(np.arange(6, dtype="<f4").reshape(2, 3), version=(2, 0)))
    write(t, "f64_v3.npy", npy(np.arange(4, dtype="<f8"), version=(3, 0)))
    # Hostile or unsupported.
    write(t, "fortran.npy", npy(np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3))))
    write(t, "big_endian.npy", npy(np.arange(3, dtype=">f4")))
    write(t, "int32.npy", npy(np.arange(3, dtype="<i4")))
    good = npy(np.arange(6, dtype="<f4").reshape(2, 3))
    write(t, "truncated_data.npy", good[:-5])
    write(t, "trailing.npy", good + b"\0\0\0\0")
    write(t, "truncated_header.npy", good[:40])
    write(t, "bad_magic.npy", b"\x93NUMPZ" + good[6:])
    write(t, "version_9.npy", good[:6] + b"\x09\x00" + good[8:])
    write(t, "header_length_lies.npy", good[:8] + struct.pack("<H", 0xFFFF) + good[10:])
    write(t, "empty.npy", b"")
    write(t, "magic_only.npy", b"\x93NUMPY")
    write(t, "negative_shape.npy", raw("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2), }"))
    write(t, "huge_shape.npy",
          raw("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", b"\0" * 8))
    write(t, "overflow_dim.npy", raw("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"))
    write(t, "zero_times_huge.npy",
          raw("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 9223372036854775807, 2), }"))
    write(t, "dims_33.npy", raw("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 33 + "), }",
                                b"\0" * 4))
    write(t, "duplicate_key.npy",
          raw("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4))
    write(t, "unknown_key.npy", raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", b"\0" * 4))
    write(t, "missing_key.npy", raw("{'descr': '<f4', 'shape': (1,)}", b"\0" * 4))
    write(t, "double_quotes.npy", raw('{"shape": (2,), "fortran_order": False, "descr": "<f8"}', b"\0" * 16))
    write(t, "no_trailing_comma.npy", raw("{'descr':'<f4','fortran_order':False,'shape':(1,1)}", b"\0" * 4))
    write(t, "structured.npy", raw("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", b"\0" * 4))
    write(t, "escape.npy", raw("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4))
    write(t, "one_dim_no_comma.npy", raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1), }", b"\0" * 4))
    write(t, "float_dim.npy", raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1.0,), }", b"\0" * 4))
    write(t, "unterminated.npy", raw("{'descr': '<f4, 'fortran_order': False, 'shape': (1,), }", b"\0" * 4))
    write(t, "v2_header_lies.npy",
          b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + b"{'descr': '<f4'")
    write(t, "utf8_v3.npy", raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), '\u00e9': 1}".encode(),
                                b"\0" * 4, version=(3, 0)))


CLI = {
    # tdconv shape --help
    "shape_same": "shape conv-transpose --input 64,64 --kernel 3 --stride 2 --padding same",
    "shape_seed": "shape conv-transpose --input 4 --kernel 3 --padding 2",
    "shape_json": "shape conv --input 33,33 --kernel 3 --dilation 18 --padding 18 --json",
    "shape_3d": "shape conv --input 16,16,16 --kernel 3 --stride 2 --padding same_lower",
    "shape_output_size": "shape conv-transpose --input 7,9 --kernel 4 --stride 3 --padding 1:2,0 --output-size 21,29 "
                         "--in-channels 8 --out-channels 4 --groups 2 --batch 3 --layout channels_last --json",
    "shape_onnx": "shape conv-transpose --input 5 --kernel 3 --stride 2 --dilation 2 --padding same_upper "
                  "--output-size 12",
    "shape_op": "shape conv-transpose --input 3,3 --kernel 2 --stride 2 --dilation 3 --output-padding 2,1 --json",
    "shape_bad": "shape conv --input 2 --kernel 9",
    # tdconv explain --help
    "explain_edges": "explain conv-transpose --x [[1,2],[3,4]] --w [[1,1,1],[0,0,0],[-1,-1,-1]] --stride 2 --padding 1",
    "explain_seed": "explain conv-transpose --x [2,3] --w [1,2,3] --stride 2",
    "explain_dilated": "explain conv --x [1,2,3,4,5,6,7] --w [1,0,-1] --dilation 2 --padding same",
    "explain_3d": "explain conv --x [[[1,2],[3,4]],[[5,6],[7,8]]] --w [[[1]],[[1]]] --padding 0,1,0",
    "explain_floats": "explain conv-transpose --x [1.5,-2e3,0.25] --w [1e-3,2] --stride 3 --output-padding 2",
    # conv / conv-transpose on the files cli_fuzz writes into its directory
    "conv_bias": "conv --input x.npy --weight w.npy --bias b.npy --output y.npy --dilation 2 --padding 2",
    "conv_causal": "conv --input x1.npy --weight w1.npy --output y.npy --dilation 3 --padding 6:0 --groups 4",
    "conv_depthwise_same": "conv --input x1.npy --weight w1.npy --output y.npy --padding same --groups 4 --stride 2",
    "conv_channels_last_tf": "conv --input l.npy --weight f.npy --output y.npy --layout channels_last "
                             "--weight-layout tf --stride 2,1 --padding 1:0,2:1",
    "conv_3d": "conv --input x3.npy --weight w3.npy --output o.npy --padding 1 --stride 2",
    "conv_f64": "conv --input d.npy --weight e.npy --output y.npy --max-memory 1M",
    "conv_dtype_mismatch": "conv --input d.npy --weight w.npy --output y.npy",
    "conv_empty_batch": "conv --input z.npy --weight w.npy --output y.npy",
    "conv_overwrite_input": "conv --input x.npy --weight w.npy --output x.npy --padding valid",
    "convT_output_padding": "conv-transpose --input x.npy --weight t.npy --output y.npy --stride 2 --padding 1 "
                            "--output-padding 1",
    "convT_same_keras": "conv-transpose --input l.npy --weight k.npy --output y.npy --stride 2 --padding same "
                        "--layout channels_last --weight-layout tf",
    "convT_output_size": "conv-transpose --input x.npy --weight t.npy --output y.npy --stride 2 --padding 1 "
                         "--output-size 10,10",
    "convT_groups": "conv-transpose --input x.npy --weight t.npy --output y.npy --groups 2 --dilation 2,3",
    "convT_missing": "conv-transpose --input nothere.npy --weight t.npy --output y.npy",
    "convT_wrong_layout": "conv-transpose --input x.npy --weight t.npy --output y.npy --layout channels_last",
    "help": "--help",
    "conv_help": "conv --help",
    "unknown": "frobnicate --input 1",
}


def cli_seeds():
    for name, line in CLI.items():
        write("cli_fuzz", name, ("\n".join(line.split(" ")) + "\n").encode())


def diff_seeds():
    rng = random.Random(11)
    for i in range(12):
        write("diff_fuzz", "random_%02d" % i, bytes(rng.randrange(256) for _ in range(rng.randrange(8, 96))))


if __name__ == "__main__":
    npy_seeds()
    cli_seeds()
    diff_seeds()

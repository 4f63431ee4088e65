"""Output safety under interruption: SIGINT / SIGTERM while `tdconv conv-transpose` computes or writes its output.

The target must be left byte-identical (or, if the command finished first, complete and valid), and no temporary
file may be left behind. The write window is hit deterministically by polling for the temporary file and
signalling the moment it appears.

Usage: /usr/bin/python3 interrupt_test.py PATH_TO_TDCONV
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def temp_files(directory):
    return [f for f in os.listdir(directory) if ".tmp." in f]


def run_trial(tdconv, directory, sig, during_write):
    out = os.path.join(directory, "y.npy")
    original = b"previous content, must survive"
    with open(out, "wb") as f:
        f.write(original)
    # float64 runs on the reference; kernel 1 at stride 8 makes a 134 MB output that is cheap to compute, so
    # there is a long write.
    cmd = [tdconv, "conv-transpose", "--input", os.path.join(directory, "x.npy"), "--weight",
           os.path.join(directory, "w.npy"), "--output", out, "--stride", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    if during_write:
        while not temp_files(directory) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.0005)
        saw_temp = bool(temp_files(directory))
    else:
        time.sleep(0.05)
        saw_temp = bool(temp_files(directory))
    proc.send_signal(sig)
    proc.wait(timeout=60)
    name = f"{signal.Signals(sig).name} {'during write' if during_write else 'during compute'}"
    leftovers = temp_files(directory)
    check(not leftovers, f"{name}: temporary files left behind: {leftovers}")
    if proc.returncode == 0:  # finished before the signal: the output must be complete
        y = np.load(out)
        check(y.shape == (1, 1, 4089, 4089), f"{name}: finished but output has shape {y.shape}")
    else:
        check(proc.returncode == -sig, f"{name}: exit status {proc.returncode}, expected death by signal {sig}")
        with open(out, "rb") as f:
            check(f.read() == original, f"{name}: the existing output file was changed")
    if during_write:
        check(saw_temp or proc.returncode == 0, f"{name}: never saw the temporary file")
    return saw_temp


def main():
    tdconv = sys.argv[1]
    with tempfile.TemporaryDirectory() as directory:
        np.save(os.path.join(directory, "x.npy"), np.ones((1, 1, 512, 512)))
        np.save(os.path.join(directory, "w.npy"), np.full((1, 1, 1, 1), 2.0))
        hits = 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            run_trial(tdconv, directory, sig, during_write=False)
            for _ in range(3):
                hits += run_trial(tdconv, directory, sig, during_write=True)
        check(hits > 0, "no trial caught the command while its temporary file existed")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a cbp training epoch spends its time, by kind of work, measured with perf.

Trains one configuration of ``bench/run.py`` with cbp and samples only the
training (``perf record`` attaches to this process after the data and the
network are made, and stops before the report), then sorts the samples into

* ``gemm``        -- BLAS matrix products (kernels, packing copies, beta scaling,
  the ``memset`` that clears an output before a product with beta 0);
* ``other BLAS``  -- anything else in BLAS (cbp calls nothing else in an epoch);
* ``BLAS threads``-- OpenBLAS worker threads waiting or handing out work;
* ``elementwise`` -- cbp's bias + activation, activation derivative, loss and
  output delta, accuracy count, and the libm calls they make (``exp``, ...);
* ``gather``      -- the shuffle and the copy of the batch rows (``memcpy``), and
  the trainer's copies of parameters and optimizer state between epochs;
* ``update``      -- the optimizer step over the parameter buffer;
* ``first touch`` -- the kernel zeroing fresh pages of buffers the fit allocates
  (a cost of each fit, not of each epoch: it shrinks with more epochs);
* ``python/other``-- the interpreter, the rest of the kernel, everything else.

Needs Linux ``perf`` (Debian: ``linux-perf``) and permission to use it.

Usage::

    python bench/profile_epoch.py mnist --dtype float32 --epochs 3 --threads 1

Sample output (mnist, float32, 1 thread, a shared 2-core Xeon)::

    mnist float32 1 thread(s): 3 epochs of 20480 samples, 0.908 s/epoch
    kind                 share
    gemm                 61.7%
    other BLAS            0.4%
    BLAS threads          0.0%
    elementwise           3.4%
    gather                4.3%
    update               19.3%
    first touch           4.2%
    python/other          6.6%
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402

KINDS = ("gemm", "other BLAS", "BLAS threads", "elementwise", "gather", "update",
         "first touch", "python/other")


def kind_of(dso, symbol):
    """Sort one perf (shared object, symbol) pair into a kind of work."""
    if "clear_page" in symbol or "zero_user" in symbol:
        return "first touch"
    # Nearly all memset time is OpenBLAS clearing the output of a product whose
    # beta is 0; cbp's own (a bias gradient's row of zeros) is a few hundred bytes.
    if "memset" in symbol:
        return "gemm"
    if "openblas" in dso:
        if "thread" in symbol or "yield" in symbol or "exec_blas" in symbol:
            return "BLAS threads"
        if re.search(r"gemm|copy|beta", symbol):
            return "gemm"
        return "other BLAS"
    if "_optim_step" in dso:
        return "update"
    if "_epoch" in dso or "memmove" in symbol or "memcpy" in symbol:
        return "gather"
    if "_backprop" in dso or dso.startswith("libm"):
        return "elementwise"
    return "python/other"


def parse_report(path):
    out = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "--sort", "dso,symbol",
         "-g", "none", "--percent-limit", "0", "--stdio"],
        capture_output=True, text=True, check=True,
    ).stdout
    shares = dict.fromkeys(KINDS, 0.0)
    top = []
    for line in out.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*?)\s*$", line)
        if not match:
            continue
        share, dso, symbol = float(match.group(1)), match.group(2), match.group(3)
        shares[kind_of(dso, symbol)] += share
        top.append((share, dso, symbol.split()[0]))
    return shares, top[:12]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", choices=list(run.CONFIGS))
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=None,
                        help="samples per epoch (default: the timed slice of run.py)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import cbp
    from threadpoolctl import threadpool_limits

    cfg = run.CONFIGS[args.config]
    n = args.samples or cfg["timed"]
    X, Y, _ = run.make_data(cfg, n, args.dtype, args.seed)
    net = cbp.Network(cfg["sizes"], output=cfg["output"], dtype=args.dtype,
                      seed=args.seed)
    trainer = cbp.Trainer(net, cfg["loss"],
                          optimizer=cbp.optim.SGD(lr=run.LR, momentum=run.MOMENTUM),
                          batch_size=cfg["batch"], epochs=args.epochs, seed=args.seed,
                          verbose=0)
    data = os.path.join(tempfile.mkdtemp(), "perf.data")
    command = ["perf", "record", "-q", "-p", str(os.getpid()), "-o", data]
    perf = subprocess.Popen(command,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    with threadpool_limits(limits=args.threads):
        started = time.perf_counter()
        trainer.fit(X, Y)
        seconds = (time.perf_counter() - started) / args.epochs
    perf.send_signal(signal.SIGINT)
    perf.wait()
    shares, top = parse_report(data)
    total = sum(shares.values()) or 1.0
    print(f"{args.config} {args.dtype} {args.threads} thread(s): {args.epochs} epochs "
          f"of {n} samples, {seconds:.3g} s/epoch")
    print(f"{'kind':18s} {'share':>7s}")
    for kind in KINDS:
        print(f"{kind:18s} {100 * shares[kind] / total:6.1f}%")
    print("\ntop symbols (share of all samples)")
    for share, dso, symbol in top:
        print(f"  {share:5.1f}%  {dso[:30]:30s} {symbol[:60]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

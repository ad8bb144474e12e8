#!/usr/bin/python3
"""torch_compare.py - libmetagrad against PyTorch's unrolled autograd on the
same work, each side in its own subprocess so that peak memory (VmHWM of
/proc/self/status) is measured per side.

mlp mode (default): MLP 784-256-10 (ReLU), f32, Fashion-MNIST (all 60000
training images; validation = the first 1000 test images), batch 128, SGD
with momentum 0.9, the same θ0 (drawn by metagrad, set in both), the same
explicit batches, metaparameters = data weights (one per training image) and
the per-step LR.  φ = mean validation cross-entropy at θ_T.
  ours:  mgrad_run_train + mgrad_run_reverse, binomial checkpointing with
         2⌈log2 T⌉ slots (and store-all when --store-all is given, and the
         auto schedule in a state budget of N MiB for each N of
         --budget-mib N ...);
         the training set in compact storage (Dataset.compact: exact, one
         byte per pixel; --dense keeps 4-byte floats);
  torch unrolled: the T steps unrolled with
         torch.autograd.grad(create_graph=True), then φ.backward();
  torch ckptK (--torch-ckpt K, default 32; 0: off): exact reverse mode over
         the same SGD-momentum steps, segment-checkpointed: the forward
         phase keeps (θ_t, m_t) at every K-th step, the reverse phase
         recomputes each segment's states from its checkpoint and runs one
         double backward per step (H·u and ∂(g·u)/∂w, u the adjoint of
         m_{t+1}); the report gives its time, memory and agreement against
         the unrolled side of the same thread setting.
Repeats run interleaved (each torch side, then each of ours, then again ...), so
that a slow spell of the machine hits every side of a repeat alike.
Reports time and peak RSS of each side (medians), the time ratio of every
repeat and their median, and the relative error ‖a − b‖/‖b‖ of the two LR
and data-weight metagradients.

cnn mode: a convolutional network on Fashion-MNIST, batch 64, T = 20:
--model small, the small ResNet of examples/small_resnet.c, or --model
resnet9, a ResNet-9-style network for 28x28 inputs (prep conv 16, conv 32 +
max pool + residual block 32, conv 64 + max pool, conv 128 + max pool +
residual block 128, global average pool, dense 10, scale 0.125).  The same
layers and the same θ0 (drawn by metagrad, set in torch in parameters()
order) on both sides; batch norm uses the statistics of the chunk on both
sides, and torch evaluates φ in ours' validation chunks (max(B, 256) rows),
so the two compute the same φ and metagradients, and the report gives their
relative difference (use --dtype f64 to separate rounding from
disagreement).  Times: plain training (images/s) and the metagradient.

Thread settings: ours runs once for each value of --threads (the
library's own threads, mgrad_context_options.threads, and its BLAS threads,
OPENBLAS_NUM_THREADS, unless --blas-threads fixes those); each torch side runs once for each value of
--torch-threads (torch.set_num_threads(n), its OpenMP intra-op pool), with
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS = --torch-blas-threads (default:
the largest --threads).  On the 2-core development machine torch was
fastest with 1 OpenMP thread and 2 OpenBLAS threads, and 3-10x slower with
2 OpenMP threads (docs/performance.md, section 3).  Each of ours is compared with every torch side (time), with
the fastest one (time, per-repeat time, peak RSS) and with the fastest
checkpointed one (time, peak RSS).  The load average is printed before and
after: other jobs on the machine move every figure.

Run from the repository root:
  PYTHONPATH=bindings/python METAGRAD_LIBRARY=<build>/lib/libmetagrad.so \\
    python3 bench/torch_compare.py --steps 200 1000 --threads 1 2 \\
        --torch-threads 1 2 --budget-mib 80 --repeats 3
  ... python3 bench/torch_compare.py --mode cnn --model resnet9 --threads 2 \\
        --torch-threads 1 2 --repeats 3
Needs python3-torch (scripts/install-bench-deps.sh) and numpy.
"""
import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def prepare(tmp, args):
    """Fashion-MNIST as .npy files (pixels / 255, f32), batches, θ0."""
    xtr = read_idx(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz"))
    ytr = read_idx(os.path.join(DATA_DIR, "train-labels-idx1-ubyte.gz"))
    xte = read_idx(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz"))
    yte = read_idx(os.path.join(DATA_DIR, "t10k-labels-idx1-ubyte.gz"))
    n = args.train if args.train > 0 else len(xtr)
    shape = (-1, 784) if args.mode == "mlp" else (-1, 1, 28, 28)
    files = {
        "xtr": (xtr[:n].astype(np.float32) / np.float32(255)).reshape(shape),
        "ytr": ytr[:n].astype(np.int64),
        "xv": (xte[:args.val].astype(np.float32) / np.float32(255)).reshape(shape),
        "yv": yte[:args.val].astype(np.int64),
    }
    paths = {}
    for k, v in files.items():
        paths[k] = os.path.join(tmp, k + ".npy")
        np.save(paths[k], np.ascontiguousarray(v))
    rng = np.random.default_rng(args.seed)
    tmax = max(args.steps)
    per_epoch = n // args.batch
    batches = np.concatenate([rng.permutation(n)[:per_epoch * args.batch]
                              for _ in range(tmax // per_epoch + 1)])[:tmax * args.batch]
    paths["batches"] = os.path.join(tmp, "batches.npy")
    np.save(paths["batches"], batches.reshape(tmax, args.batch).astype(np.int64))
    import metagrad as mg
    ctx = mg.Context(dtype="f32")
    model = our_model(mg, ctx, vars(args))
    if True:
        model.init_params(args.seed)
        paths["theta0"] = os.path.join(tmp, "theta0.npy")
        np.save(paths["theta0"], np.asarray(model.params, dtype=np.float32))
        model.close()
        ctx.close()
    return paths, n


# ---------------------------------------------------------------- children

def our_model(mg, ctx, cfg):
    """The network of the mode (and --model), built with metagrad."""
    if cfg["mode"] == "mlp":
        return mg.Model(ctx, [784]).dense(cfg["hidden"]).activation("relu").dense(10)
    model = mg.Model(ctx, [1, 28, 28])
    if cfg["model"] == "small":
        model.conv2d(8, 3, 1, 1).batch_norm().activation("relu")
        model.resnet_block(8, 1).resnet_block(16, 2)
        model.avg_pool(2, 2).global_avg_pool().dense(10).scale(0.5)
    else:  # resnet9: ResNet-9's layout, widths / 4, pools sized for 28x28
        model.conv2d(16, 3, 1, 1).batch_norm().activation("relu")              # 16x28x28
        model.conv2d(32, 3, 1, 1).batch_norm().activation("relu").max_pool(2)  # 32x14x14
        model.resnet_block(32, 1)
        model.conv2d(64, 3, 1, 1).batch_norm().activation("relu").max_pool(2)  # 64x7x7
        model.conv2d(128, 3, 1, 1).batch_norm().activation("relu").max_pool(2)  # 128x3x3
        model.resnet_block(128, 1)
        model.global_avg_pool().dense(10).scale(0.125)
    return model


def child_ours(cfg):
    import metagrad as mg
    T, B = cfg["steps"], cfg["batch"]
    p = cfg["paths"]
    ctx = mg.Context(dtype=cfg["dtype"], threads=cfg["threads"])
    if cfg.get("compact", True) and cfg["n"] == 60000 and cfg["dtype"] == "f32":
        # Straight from the Debian package's IDX files: stored compact as
        # loaded (one byte per pixel; the values, b / 255 in f32, are those
        # of the .npy file the torch side reads, bit for bit).  Not in f64:
        # there the loader's b / 255 in double differs from the f32 .npy
        # values both sides would otherwise share.
        train = mg.Dataset.load_fashion_mnist(ctx, "train", dir=DATA_DIR)
    else:
        train = mg.Dataset.load_npy(ctx, p["xtr"], p["ytr"], num_classes=10)
        if cfg.get("compact", True):
            train.compact()  # exact; the dense copy has already counted in the peak
    val = mg.Dataset.load_npy(ctx, p["xv"], p["yv"], num_classes=10)
    batches = np.load(p["batches"])[:T]
    model = our_model(mg, ctx, cfg)
    model.params = np.load(p["theta0"])
    opts = dict(validation=val, steps=T, batch_size=B, lr=cfg["lr"], momentum=0.9,
                batches=batches)
    if cfg["schedule"] == "store-all":
        opts.update(checkpoint="store_all")
    elif cfg["schedule"].startswith("budget"):
        opts.update(checkpoint="auto", checkpoint_budget_bytes=cfg["budget_mib"] << 20)
    else:
        slots = 2 * max(1, math.ceil(math.log2(T)))
        opts.update(checkpoint="binomial", checkpoint_slots=slots)
    out = {}
    if cfg["mode"] == "cnn" or cfg.get("plain"):
        plain = mg.Run(model, train, steps=T, batch_size=B, validation=val, lr=cfg["lr"],
                       momentum=0.9, batches=batches, checkpoint="binomial",
                       checkpoint_slots=1)
        plain.train()  # warm-up
        t0 = time.perf_counter()
        plain.train()
        out["plain_s"] = time.perf_counter() - t0
        plain.close()
    run = mg.Run(model, train, **opts)
    lrm = run.add_meta("lr_schedule")
    wm = run.add_meta("data_weights")
    t0 = time.perf_counter()
    phi = run.train()
    t1 = time.perf_counter()
    run.reverse()
    t2 = time.perf_counter()
    out.update(phi=phi, train_s=t1 - t0, reverse_s=t2 - t1, total_s=t2 - t0,
               ctx_peak=ctx.memory()[1], rss=peak_rss(),
               slots=run.stats["checkpoint_slots"],
               recomputed=run.stats["steps_recomputed"],
               memo_hits=run.stats["memo_hits"])
    np.save(cfg["out"] + ".lr.npy", np.asarray(lrm.grad, dtype=np.float64))
    np.save(cfg["out"] + ".w.npy", np.asarray(wm.grad, dtype=np.float64))
    return out


def torch_model(cfg):
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, c, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, c, 3, stride, 1)
            self.b1 = nn.BatchNorm2d(c, track_running_stats=False)
            self.c2 = nn.Conv2d(c, c, 3, 1, 1)
            self.b2 = nn.BatchNorm2d(c, track_running_stats=False)
            self.proj = None
            if stride != 1 or cin != c:
                self.proj = nn.Sequential(nn.Conv2d(cin, c, 1, stride, 0),
                                          nn.BatchNorm2d(c, track_running_stats=False))

        def forward(self, x):
            h = torch.relu(self.b1(self.c1(x)))
            h = self.b2(self.c2(h))
            return torch.relu(h + (x if self.proj is None else self.proj(x)))

    def cbr(cin, c):
        return [nn.Conv2d(cin, c, 3, 1, 1), nn.BatchNorm2d(c, track_running_stats=False),
                nn.ReLU()]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1),
                                      nn.BatchNorm2d(8, track_running_stats=False), nn.ReLU())
            self.blocks = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2))
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            h = self.blocks(self.stem(x))
            h = torch.nn.functional.avg_pool2d(h, 2, 2).mean(dim=(2, 3))
            return 0.5 * self.fc(h)

    class ResNet9(nn.Module):  # the layers of our_model's resnet9, in its order
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                *cbr(1, 16), *cbr(16, 32), nn.MaxPool2d(2), Block(32, 32, 1),
                *cbr(32, 64), nn.MaxPool2d(2), *cbr(64, 128), nn.MaxPool2d(2),
                Block(128, 128, 1))
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            return 0.125 * self.fc(self.body(x).mean(dim=(2, 3)))

    return Net() if cfg["model"] == "small" else ResNet9()


def child_torch(cfg):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(cfg["torch_threads"])
    T, B = cfg["steps"], cfg["batch"]
    p = cfg["paths"]
    dt = torch.float64 if cfg["dtype"] == "f64" else torch.float32
    torch.set_default_dtype(dt)
    X = torch.from_numpy(np.load(p["xtr"])).to(dt)
    Y = torch.from_numpy(np.load(p["ytr"]))
    Xv = torch.from_numpy(np.load(p["xv"])).to(dt)
    Yv = torch.from_numpy(np.load(p["yv"]))
    batches = torch.from_numpy(np.load(p["batches"])[:T])
    N = X.shape[0]
    lr, mu = cfg["lr"], 0.9
    out = {}
    if cfg["mode"] == "mlp":
        H = cfg["hidden"]
        th = torch.from_numpy(np.load(p["theta0"])).to(dt)
        sizes = [(H, 784), (H,), (10, H), (10,)]
        params0, o = [], 0
        for s in sizes:
            k = int(np.prod(s))
            params0.append(th[o:o + k].reshape(s).clone())
            o += k

        def fwd(x, ps):
            return F.linear(torch.relu(F.linear(x, ps[0], ps[1])), ps[2], ps[3])
    else:
        try:
            from torch.func import functional_call
        except ImportError:  # torch < 2.0
            from torch.nn.utils.stateless import functional_call
        net = torch_model(cfg).to(dt)
        names = [n for n, _ in net.named_parameters()]
        # θ0 from metagrad: our layout is torch's parameters() order, each
        # tensor row-major (conv [OC, C, k, k] then bias, batch norm γ then β)
        th = torch.from_numpy(np.load(p["theta0"])).to(dt)
        params0, o = [], 0
        for q in net.parameters():
            params0.append(th[o:o + q.numel()].reshape(q.shape).clone())
            o += q.numel()
        assert o == th.numel(), "parameter layouts differ: %d vs %d" % (o, th.numel())

        def fwd(x, ps):
            return functional_call(net, dict(zip(names, ps)), (x,))

    # plain training (torch.optim.SGD semantics), warm-up then timed
    def plain():
        ps = [q.clone().requires_grad_(True) for q in params0]
        opt = torch.optim.SGD(ps, lr=lr, momentum=mu)
        for t in range(T):
            idx = batches[t]
            loss = F.cross_entropy(fwd(X.index_select(0, idx), ps), Y.index_select(0, idx))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            F.cross_entropy(fwd(Xv, ps), Yv)
    if cfg["mode"] == "cnn" or cfg.get("plain"):
        plain()
        t0 = time.perf_counter()
        plain()
        out["plain_s"] = time.perf_counter() - t0

    if cfg.get("ckpt", 0) > 0:
        out.update(torch_ckpt(cfg, fwd, params0, X, Y, Xv, Yv, batches))
        return out
    w = torch.ones(N, requires_grad=True)
    lrs = torch.full((T,), lr, requires_grad=True)
    ps = [q.clone().requires_grad_(True) for q in params0]
    bufs = [torch.zeros_like(q) for q in ps]
    t0 = time.perf_counter()
    for t in range(T):
        idx = batches[t]
        ell = F.cross_entropy(fwd(X.index_select(0, idx), ps), Y.index_select(0, idx),
                              reduction="none")
        loss = (w[idx] * ell).sum() / B
        g = torch.autograd.grad(loss, ps, create_graph=True)
        bufs = [mu * m + gi for m, gi in zip(bufs, g)]
        ps = [q - lrs[t] * m for q, m in zip(ps, bufs)]
    if cfg["mode"] == "cnn":
        # batch norm couples the rows of a chunk: evaluate φ in ours' chunks
        ch = max(B, 256)
        phi = sum(F.cross_entropy(fwd(Xv[i:i + ch], ps), Yv[i:i + ch], reduction="sum")
                  for i in range(0, Xv.shape[0], ch)) / Xv.shape[0]
    else:
        phi = F.cross_entropy(fwd(Xv, ps), Yv)
    t1 = time.perf_counter()
    phi.backward()
    t2 = time.perf_counter()
    out.update(phi=float(phi), train_s=t1 - t0, reverse_s=t2 - t1, total_s=t2 - t0,
               rss=peak_rss())
    np.save(cfg["out"] + ".lr.npy", lrs.grad.double().numpy())
    np.save(cfg["out"] + ".w.npy", w.grad.double().numpy())
    return out


def torch_ckpt(cfg, fwd, params0, X, Y, Xv, Yv, batches):
    """Exact reverse mode over the SGD-momentum trajectory, segment-checkpointed:
    the forward phase keeps (θ_t, m_t) at every k-th step only; the reverse
    phase recomputes each segment's states from its checkpoint, then runs its
    steps backwards, one double backward (H·u and ∂(g·u)/∂w) per step.  The
    steps are the unrolled side's, op for op, so the two compute the same
    metagradients (up to the summation order of the reverse phase)."""
    import torch
    import torch.nn.functional as F
    T, B, k = cfg["steps"], cfg["batch"], cfg["ckpt"]
    mu = 0.9
    N = X.shape[0]
    w = torch.ones(N)
    lrs = torch.full((T,), cfg["lr"])

    def grad_step(ps, t, wb, create):
        idx = batches[t]
        ell = F.cross_entropy(fwd(X.index_select(0, idx), ps), Y.index_select(0, idx),
                              reduction="none")
        loss = (wb * ell).sum() / B
        return torch.autograd.grad(loss, ps, create_graph=create)

    def step(ps, m, t):  # the unrolled side's update: m ← μm + g, θ ← θ − η_t m
        g = grad_step(ps, t, w[batches[t]], False)
        with torch.no_grad():
            m = [mu * mi + gi for mi, gi in zip(m, g)]
            ps = [q - lrs[t] * mi for q, mi in zip(ps, m)]
        return [q.requires_grad_(True) for q in ps], m

    t0 = time.perf_counter()
    ps = [q.clone().requires_grad_(True) for q in params0]
    m = [torch.zeros_like(q) for q in ps]
    ckpts = []
    for t in range(T):
        if t % k == 0:
            ckpts.append(([q.detach().clone() for q in ps], [mi.clone() for mi in m]))
        ps, m = step(ps, m, t)
    phi = F.cross_entropy(fwd(Xv, ps), Yv)
    t1 = time.perf_counter()
    tb = list(torch.autograd.grad(phi, ps))  # adjoint of θ_T
    mb = [torch.zeros_like(q) for q in tb]   # adjoint of m_{t+1}, less the θ term
    lr_bar = torch.zeros(T, dtype=tb[0].dtype)
    w_bar = torch.zeros(N, dtype=tb[0].dtype)
    for s in reversed(range(len(ckpts))):
        a, b = s * k, min(T, (s + 1) * k)
        ps = [q.clone().requires_grad_(True) for q in ckpts[s][0]]
        m = ckpts[s][1]
        seg = []  # (θ_t, m_{t+1}) for t in [a, b)
        for t in range(a, b):
            nps, m = step(ps, m, t)
            seg.append((ps, m))
            ps = nps
        for t in reversed(range(a, b)):
            th, m1 = seg[t - a]
            with torch.no_grad():
                lr_bar[t] = -sum((x * y).sum() for x, y in zip(tb, m1))
                mb = [u - lrs[t] * x for u, x in zip(mb, tb)]
            idx = batches[t]
            wb = w[idx].clone().requires_grad_(True)
            g = grad_step(th, t, wb, True)
            dot = sum((gi * ui).sum() for gi, ui in zip(g, mb))
            hs = torch.autograd.grad(dot, th + [wb])
            with torch.no_grad():
                tb = [x + h for x, h in zip(tb, hs[:-1])]
                w_bar.index_add_(0, idx, hs[-1])
                mb = [mu * u for u in mb]
        ckpts[s] = None
    t2 = time.perf_counter()
    np.save(cfg["out"] + ".lr.npy", lr_bar.double().numpy())
    np.save(cfg["out"] + ".w.npy", w_bar.double().numpy())
    return dict(phi=float(phi), train_s=t1 - t0, reverse_s=t2 - t1, total_s=t2 - t0,
                rss=peak_rss())


# ---------------------------------------------------------------- parent

def run_child(side, cfg, timeout, script=__file__, omp_threads=None):
    """Run `script --child [side] CFG` in a process of its own (so that its
    peak RSS is its own) and return the JSON dict of its last output line,
    or {"error": ...}.  The benchmarks in bench/ share this runner."""
    env = dict(os.environ)
    # ours: its BLAS threads; torch: OpenBLAS (and the OpenMP default) at
    # --torch-blas-threads, its intra-op pool set by torch.set_num_threads
    env["OPENBLAS_NUM_THREADS"] = str(cfg.get("blas_threads") or cfg["threads"])
    env["OMP_NUM_THREADS"] = str(cfg["threads"] if omp_threads is None else omp_threads)
    argv = [sys.executable, os.path.abspath(script), "--child"]
    argv += ([side] if side is not None else []) + [json.dumps(cfg)]
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %d s" % timeout}
    if r.returncode != 0:
        tail = (r.stderr or "").strip().splitlines()[-3:]
        return {"error": "exit %d (%s)" % (r.returncode,
                                           "killed: out of memory?" if r.returncode < 0
                                           else " | ".join(tail))}
    return json.loads(r.stdout.strip().splitlines()[-1])


def agreement(r, t):
    """Relative differences of the LR and data-weight metagradients of r and t."""
    return tuple(rel(np.load(r["out"] + ext), np.load(t["out"] + ext))
                 for ext in (".lr.npy", ".w.npy"))


def rel(a, b):
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb > 0 else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["mlp", "cnn"], default="mlp")
    ap.add_argument("--model", choices=["small", "resnet9"], default="small",
                    help="cnn mode: the network (see the module docstring)")
    ap.add_argument("--steps", type=int, nargs="+", default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--train", type=int, default=0, help="training images (0: all 60000)")
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, nargs="+", default=[2],
                    help="our BLAS threads (OPENBLAS_NUM_THREADS), one side of ours per "
                         "value and schedule")
    ap.add_argument("--blas-threads", type=int, default=0,
                    help="OPENBLAS_NUM_THREADS of our side (default 0: each --threads "
                         "value); --threads is then the library's own threads "
                         "(mgrad_context_options.threads)")
    ap.add_argument("--no-torch", action="store_true",
                    help="run our sides only (for our time at one thread count over another)")
    ap.add_argument("--torch-threads", type=int, nargs="+", default=None,
                    help="torch.set_num_threads for the torch side, one torch side per "
                         "value (default: --torch-blas-threads)")
    ap.add_argument("--torch-blas-threads", type=int, default=None,
                    help="OPENBLAS_NUM_THREADS and OMP_NUM_THREADS of the torch side "
                         "(default: the largest --threads)")
    ap.add_argument("--torch-ckpt", type=int, default=32,
                    help="mlp mode: also run torch's segment-checkpointed reverse, keeping "
                         "every k-th state (0: unrolled only)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32",
                    help="element type of both sides (f64: to separate rounding from "
                         "disagreement)")
    ap.add_argument("--store-all", action="store_true", help="also run ours with store-all")
    ap.add_argument("--budget-mib", type=int, nargs="*", default=[],
                    help="also run ours with the auto schedule in each of these state "
                         "budgets (MiB)")
    ap.add_argument("--dense", action="store_true",
                    help="keep our training set as 4-byte floats (no Dataset.compact)")
    ap.add_argument("--plain", action="store_true", help="also time plain training (mlp)")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        side, cfg = args.child[0], json.loads(args.child[1])
        out = child_ours(cfg) if side == "ours" else child_torch(cfg)
        print(json.dumps(out))
        return
    if args.steps is None:
        args.steps = [200, 1000] if args.mode == "mlp" else [20]
    if args.batch is None:
        args.batch = 128 if args.mode == "mlp" else 64
    if args.torch_blas_threads is None:
        args.torch_blas_threads = max(args.threads)
    if args.torch_threads is None:
        args.torch_threads = [args.torch_blas_threads]
    import torch
    print("%s%s, %s, T in %s, batch %d, lr %g, our BLAS threads %s, torch: %d BLAS threads, "
          "set_num_threads %s, torch %s, %d repeat(s) (medians)" % (
              args.mode, " " + args.model if args.mode == "cnn" else "", args.dtype, args.steps,
              args.batch, args.lr, args.threads, args.torch_blas_threads, args.torch_threads,
              torch.__version__, args.repeats))
    if args.blas_threads:
        print("our BLAS threads: %d (OPENBLAS_NUM_THREADS); --threads sets our library "
              "threads" % args.blas_threads)
    print("load average before: %s" % open("/proc/loadavg").read().strip())
    with tempfile.TemporaryDirectory() as tmp:
        paths, n = prepare(tmp, args)
        # (side, name, schedule, threads, torch threads, budget MiB, torch ckpt k)
        sides = [("torch", "unrolled %dt" % tt, "unrolled", args.torch_blas_threads, tt, 0, 0)
                 for tt in args.torch_threads] if not args.no_torch else []
        if args.mode == "mlp" and args.torch_ckpt > 0 and not args.no_torch:
            sides += [("torch", "ckpt%d %dt" % (args.torch_ckpt, tt), "ckpt",
                       args.torch_blas_threads, tt, 0, args.torch_ckpt)
                      for tt in args.torch_threads]
        for th in args.threads:
            sides.append(("ours", "binomial %dt" % th, "binomial", th, 0, 0, 0))
            if args.store_all:
                sides.append(("ours", "store-all %dt" % th, "store-all", th, 0, 0, 0))
            for mib in args.budget_mib:
                sides.append(("ours", "budget %d MiB %dt" % (mib, th), "budget", th, 0, mib, 0))
        for T in args.steps:
            runs = {(s[0], s[1]): [] for s in sides}
            for rep in range(args.repeats):  # interleaved: see the docstring
                for side, sched, schedule, th, tt, mib, k in sides:
                    done = runs[(side, sched)]
                    if done and "error" in done[-1]:
                        continue
                    cfg = dict(mode=args.mode, model=args.model, steps=T, batch=args.batch,
                               hidden=args.hidden, lr=args.lr, threads=th,
                               blas_threads=args.blas_threads if side == "ours" else 0,
                               torch_threads=tt, ckpt=k, paths=paths,
                               dtype=args.dtype, compact=not args.dense, n=n,
                               budget_mib=mib, schedule=schedule,
                               plain=args.plain,
                               out=os.path.join(tmp, "%s-%s-%d" % (side, sched.replace(" ", "_"), T)))
                    load = open("/proc/loadavg").read().split()[0]
                    r = run_child(side, cfg, args.timeout)
                    r["out"] = cfg["out"]
                    r["load"] = load
                    done.append(r)
            res = {}
            for key, rs in runs.items():
                ok = [r for r in rs if "error" not in r]
                if not ok:
                    res[key] = rs[-1]
                    continue
                med = {k: float(np.median([r[k] for r in ok])) for k in ok[0]
                       if k not in ("out", "load")}
                med["out"] = ok[0]["out"]
                med["runs"] = rs
                if len(rs) > 1:  # medians hide spread: show every repeat
                    med["per_repeat"] = ", ".join(
                        "%.2f s %.0f MiB (load %s)" % (r["total_s"], r["rss"] / 2**20, r["load"])
                        if "error" not in r else r["error"] for r in rs)
                res[key] = med
            report(args, T, n, res)
    print("load average after: %s" % open("/proc/loadavg").read().strip())


def report(args, T, n, res):
    B = args.batch
    print("\nT = %d (%d images/step, %d training images)" % (T, B, n))
    print("  %-22s %9s %9s %9s %9s %11s %10s %10s" % (
        "side", "train s", "reverse s", "total s", "plain s", "peak RSS", "ctx peak",
        "meta img/s"))
    for (side, sched), r in res.items():
        name = "%s %s" % (side, sched)
        if "error" in r:
            print("  %-22s %s" % (name, r["error"]))
            continue
        print("  %-22s %9.2f %9.2f %9.2f %9s %8.0f MiB %6s MiB %10.0f" % (
            name, r["train_s"], r["reverse_s"], r["total_s"],
            "%.2f" % r["plain_s"] if "plain_s" in r else "-", r["rss"] / 2**20,
            "%.0f" % (r["ctx_peak"] / 2**20) if "ctx_peak" in r else "-",
            T * B / r["total_s"]))
        if "plain_s" in r:
            print("  %-22s plain training %.0f images/s" % ("", T * B / r["plain_s"]))
        if "per_repeat" in r:
            print("  %-22s repeats: %s" % ("", r["per_repeat"]))
        if "slots" in r:
            print("  %-22s %d checkpoint slots, %d steps recomputed, %d forward passes "
                  "from the memo" % ("", r["slots"], r["recomputed"], r["memo_hits"]))
    torches = [(k, r) for k, r in res.items() if k[0] == "torch" and "error" not in r]
    best = None
    if torches:  # the fastest torch side by its median metagradient time
        best = min(torches, key=lambda kr: kr[1]["total_s"])
        print("  fastest torch side: %s %s (%.2f s)" % (best[0] + (best[1]["total_s"],)))
    ckpts = [(k, r) for k, r in torches if k[1].startswith("ckpt")]
    for (_, name), r in ckpts:  # the checkpointed reverse against the unrolled one
        for (_, uname), u in torches:
            if uname.startswith("unrolled") and uname.split()[-1] == name.split()[-1]:
                print("  torch %s / torch %s: time %.3fx, peak RSS %.3fx; phi %.6f vs %.6f; "
                      "rel. difference: LR %.2e, data weights %.2e" % (
                          name, uname, r["total_s"] / u["total_s"], r["rss"] / u["rss"],
                          r["phi"], u["phi"], *agreement(r, u)))

    def ratios(r, t):
        line = "metagradient time %.3fx, peak RSS %.3fx" % (
            r["total_s"] / t["total_s"], r["rss"] / t["rss"])
        pairs = [(a["total_s"] / b["total_s"]) for a, b in zip(r.get("runs", []),
                                                                t.get("runs", []))
                 if "error" not in a and "error" not in b]
        if len(pairs) > 1:
            line += " (per repeat %s; median %.3fx)" % (
                " ".join("%.3f" % x for x in pairs), float(np.median(pairs)))
        return line

    # ours at each thread count against the same schedule at the first
    # --threads value: the speed-up of the library's threads
    base_th = "%dt" % args.threads[0]
    for key, r in res.items():
        if key[0] != "ours" or "error" in r or key[1].endswith(" " + base_th):
            continue
        bkey = ("ours", " ".join(key[1].split()[:-1] + [base_th]))
        b = res.get(bkey)
        if b is None or "error" in b:
            continue
        pairs = [(x["total_s"] / y["total_s"]) for x, y in zip(b.get("runs", []),
                                                                r.get("runs", []))
                 if "error" not in x and "error" not in y]
        print("  ours %s: %.3fx faster than %s (medians)%s" % (
            key[1], b["total_s"] / r["total_s"], bkey[1],
            "; per repeat %s, median of ratios %.3fx" % (
                " ".join("%.3f" % x for x in pairs), float(np.median(pairs)))
            if len(pairs) > 1 else ""))
    for key, r in res.items():
        if key[0] != "ours" or "error" in r:
            continue
        name = "ours %s" % key[1]
        if args.no_torch:
            continue
        if not torches:
            print("  %s vs torch: torch failed, no ratio" % name)
            continue
        print("  %s, time against each torch side: %s" % (name, ", ".join(
            "%s %.3fx" % (tk[1], r["total_s"] / t["total_s"]) for tk, t in torches)))
        t = best[1]
        line = "  %s / fastest torch (%s): %s" % (name, best[0][1], ratios(r, t))
        if "plain_s" in r and "plain_s" in t:
            tp = [b["plain_s"] / a["plain_s"] for a, b in zip(r.get("runs", []),
                                                               t.get("runs", []))
                  if "error" not in a and "error" not in b]
            line += "; training images/s %.3fx" % (t["plain_s"] / r["plain_s"])
            if len(tp) > 1:
                line += " (per repeat %s; median %.3fx)" % (
                    " ".join("%.3f" % x for x in tp), float(np.median(tp)))
        print(line)
        if ckpts:
            cb = min(ckpts, key=lambda kr: kr[1]["total_s"])
            if cb[0] != best[0]:
                print("  %s / fastest checkpointed torch (%s): %s" % (name, cb[0][1],
                                                                      ratios(r, cb[1])))
        shown = {k[1].split()[0]: (k, t) for k, t in reversed(torches)}  # one per kind
        for (_, tname), t in shown.values():
            print("  %s vs torch %s: phi %.6f vs %.6f; rel. difference: LR metagradient "
                  "%.2e, data-weight metagradient %.2e" % (name, tname, r["phi"], t["phi"],
                                                           *agreement(r, t)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

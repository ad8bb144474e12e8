#!/usr/bin/python3
"""torch_bridge.py - the cost of metagrad.torch (a torch.nn.Module as a
callback model) on Fashion-MNIST, MLP 784-256-10 (ReLU), f32, batch 128,
SGD with momentum 0.9, the same θ0 and explicit batches everywhere;
metaparameters: data weights (one per training image) and the per-step LR.

Part 1, overhead (--overhead-steps T, default 200): the bridge against the
built-in model on the same run, binomial checkpointing with 2⌈log2 T⌉ slots
on both: time of train() alone and of train() + reverse(), and their
ratios; the bridge with each torch thread count of --torch-threads (the
best one is reported and used in part 2).

Part 2, against PyTorch (--steps, default 1000): the bridge (binomial),
the built-in model (binomial) and PyTorch's unrolled metagradient
(torch.autograd.grad(create_graph=True) over the T steps, then
φ.backward(); bench/torch_compare.py's child): time and peak RSS (VmHWM)
of each, each in its own subprocess, and the relative errors of the
bridge's metagradients against the other two.

Every side runs in its own subprocess; repeats are interleaved (each side
once per round) so that a slow spell of the shared machine hits all sides
of a round alike; figures are medians over the rounds, and the ratios are
taken per round, then their median.

Run from the repository root:
  PYTHONPATH=bindings/python METAGRAD_LIBRARY=<build>/lib/libmetagrad.so \\
    /usr/bin/python3 bench/torch_bridge.py --repeats 3
Needs python3-torch, numpy and Fashion-MNIST (dataset-fashion-mnist).
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_compare as tc  # noqa: E402  (data preparation, peak RSS, the torch child)


def child_lib(cfg):
    """The built-in model (side 'builtin') or the bridge (side 'bridge')."""
    import metagrad as mg
    T, B = cfg["steps"], cfg["batch"]
    p = cfg["paths"]
    ctx = mg.Context(dtype=cfg["dtype"], threads=cfg["threads"])
    if cfg["dtype"] == "f32":
        # as torch_compare's 'ours': the IDX files, stored compact (exact)
        train = mg.Dataset.load_fashion_mnist(ctx, "train", dir=tc.DATA_DIR)
    else:  # the f32 values of the .npy file the torch side reads (the loader's b / 255
        # in double would differ from them)
        train = mg.Dataset.load_npy(ctx, p["xtr"], p["ytr"], num_classes=10)
        train.compact()  # exact
    val = mg.Dataset.load_npy(ctx, p["xv"], p["yv"], num_classes=10)
    batches = np.load(p["batches"])[:T]
    theta0 = np.load(p["theta0"])
    slots = 2 * max(1, math.ceil(math.log2(T)))
    opts = dict(validation=val, steps=T, batch_size=B, lr=cfg["lr"], momentum=0.9,
                batches=batches, checkpoint="binomial", checkpoint_slots=slots)
    if cfg["side"] == "bridge":
        import torch
        from metagrad.torch import TorchModel
        torch.set_num_threads(cfg["torch_threads"])
        net = torch.nn.Sequential(torch.nn.Linear(784, cfg["hidden"]), torch.nn.ReLU(),
                                  torch.nn.Linear(cfg["hidden"], 10))
        tm = TorchModel(net.double() if cfg["dtype"] == "f64" else net, 784)
        run = tm.run(ctx, train, theta0=theta0, **opts)
    else:
        model = mg.Model(ctx, [784]).dense(cfg["hidden"]).activation("relu").dense(10)
        model.params = theta0
        run = mg.Run(model, train, **opts)
    out = {}
    if cfg.get("train_only"):
        run.train()  # warm-up
        t0 = time.perf_counter()
        run.train()
        out["plain_s"] = time.perf_counter() - t0
    lrm = run.add_meta("lr_schedule")
    wm = run.add_meta("data_weights")
    t0 = time.perf_counter()
    phi = run.train()
    t1 = time.perf_counter()
    run.reverse()
    t2 = time.perf_counter()
    out.update(phi=phi, train_s=t1 - t0, reverse_s=t2 - t1, total_s=t2 - t0,
               rss=tc.peak_rss(), ctx_peak=ctx.memory()[1],
               recomputed=run.stats["steps_recomputed"])
    np.save(cfg["out"] + ".lr.npy", np.asarray(lrm.grad, dtype=np.float64))
    np.save(cfg["out"] + ".w.npy", np.asarray(wm.grad, dtype=np.float64))
    return out


def run_child(cfg, timeout):
    return tc.run_child(None, cfg, timeout, script=__file__,
                        omp_threads=cfg.get("torch_threads", cfg["threads"]))


def rounds(sides, base, repeats, timeout):
    """Run every side `repeats` times, interleaved; {name: [results]}."""
    res = {name: [] for name, _ in sides}
    for _ in range(repeats):
        for name, extra in sides:
            done = res[name]
            if done and "error" in done[-1]:
                continue
            cfg = dict(base, **extra)
            cfg["out"] = os.path.join(base["tmp"], "%s-%d" % (name.replace(" ", "_"),
                                                              cfg["steps"]))
            done.append(run_child(cfg, timeout))
            print("    %-22s %s" % (name, "%.2f s" % done[-1]["total_s"]
                                     if "error" not in done[-1] else done[-1]["error"]),
                  flush=True)
    return res


def med(rs, key):
    ok = [r[key] for r in rs if "error" not in r]
    return float(np.median(ok)) if ok else float("nan")


def ratio(a, b, key):
    per = [x[key] / y[key] for x, y in zip(a, b) if "error" not in x and "error" not in y]
    return float(np.median(per)) if per else float("nan"), per


def rel(out_a, out_b, what):
    a, b = np.load(out_a + "." + what + ".npy"), np.load(out_b + "." + what + ".npy")
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def overhead(args, base, tmp):
    """Part 1; returns the best torch thread count for the bridge."""
    T = args.overhead_steps
    print("\npart 1: T = %d, binomial checkpointing, each side: train() twice (the "
          "second timed), then train() + reverse() with both metaparameters" % T,
          flush=True)
    sides = [("builtin", dict(side="builtin"))]
    sides += [("bridge torch x%d" % k, dict(side="bridge", torch_threads=k))
              for k in args.torch_threads]
    res = rounds(sides, dict(base, steps=T, train_only=True), args.repeats, args.timeout)
    print("  %-22s %9s %9s %9s %9s %11s" % ("side", "train s", "meta s", "train x",
                                             "meta x", "peak RSS"))
    b = res["builtin"]
    best, best_meta = None, float("inf")
    for name, _ in sides:
        rs = res[name]
        tx, _ = ratio(rs, b, "plain_s")
        mx, per = ratio(rs, b, "total_s")
        print("  %-22s %9.3f %9.3f %9.2f %9.2f %8.0f MiB" % (
            name, med(rs, "plain_s"), med(rs, "total_s"), tx, mx, med(rs, "rss") / 2**20))
        if name != "builtin":
            print("  %-22s per-step: train %.2f ms vs %.2f ms; meta ratios per repeat %s"
                  % ("", 1e3 * med(rs, "plain_s") / T, 1e3 * med(b, "plain_s") / T,
                     " ".join("%.2f" % x for x in per)))
            if med(rs, "total_s") < best_meta:
                best, best_meta = dict(sides)[name]["torch_threads"], med(rs, "total_s")
            print("  %-22s rel. error vs built-in: LR metagradient %.2e, data-weight "
                  "metagradient %.2e; phi %.6f vs %.6f"
                  % ("", rel_out(tmp, name, "builtin", T, "lr"),
                     rel_out(tmp, name, "builtin", T, "w"), med(rs, "phi"), med(b, "phi")))
    print("  best torch thread count for the bridge: %s" % best, flush=True)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--overhead-steps", type=int, default=200)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2, help="library and torch_compare threads")
    ap.add_argument("--torch-threads", type=int, nargs="+", default=[1, 2],
                    help="torch thread counts tried for the bridge in part 1")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32",
                    help="element type of every side (f64: agreement at T = 1000, where f32 "
                         "trajectories part, docs/performance.md)")
    ap.add_argument("--skip-overhead", action="store_true", help="part 2 only")
    ap.add_argument("--skip-unrolled", action="store_true",
                    help="part 2 without PyTorch's unrolled side")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        cfg = json.loads(args.child)
        out = tc.child_torch(cfg) if cfg["side"] == "unrolled" else child_lib(cfg)
        print(json.dumps(out))
        return
    import torch
    tmax = max(args.steps, args.overhead_steps)
    print("metagrad.torch bridge: Fashion-MNIST MLP 784-%d-10 (ReLU), %s, batch %d, lr %g, "
          "momentum 0.9; torch %s; library threads %d; %d interleaved repeat(s), medians"
          % (args.hidden, args.dtype, args.batch, args.lr, torch.__version__, args.threads,
             args.repeats), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        prep = argparse.Namespace(mode="mlp", train=0, val=args.val, seed=args.seed,
                                  steps=[tmax], batch=args.batch, hidden=args.hidden)
        paths, n = tc.prepare(tmp, prep)
        base = dict(mode="mlp", batch=args.batch, hidden=args.hidden, lr=args.lr,
                    threads=args.threads, paths=paths, dtype=args.dtype, n=n, compact=True,
                    schedule="binomial", budget_mib=0, plain=False, tmp=tmp)

        best = args.torch_threads[0]
        if not args.skip_overhead:
            best = overhead(args, base, tmp)

        # part 2: against PyTorch unrolled
        T = args.steps
        print("\npart 2: T = %d; bridge with %s torch thread(s)" % (T, best), flush=True)
        sides = [("bridge", dict(side="bridge", torch_threads=best)),
                 ("builtin", dict(side="builtin"))]
        if not args.skip_unrolled:
            sides.insert(0, ("torch unrolled", dict(side="unrolled", threads=best,
                                                    torch_threads=best)))
        res = rounds(sides, dict(base, steps=T), args.repeats, args.timeout)
        print("  %-22s %9s %9s %9s %11s %10s" % ("side", "train s", "reverse s", "total s",
                                                  "peak RSS", "ctx peak"))
        for name, _ in sides:
            rs = res[name]
            if not [r for r in rs if "error" not in r]:
                print("  %-22s %s" % (name, rs[-1]["error"]))
                continue
            print("  %-22s %9.2f %9.2f %9.2f %8.0f MiB %6s MiB" % (
                name, med(rs, "train_s"), med(rs, "reverse_s"), med(rs, "total_s"),
                med(rs, "rss") / 2**20,
                "%.0f" % (med(rs, "ctx_peak") / 2**20) if "ctx_peak" in rs[0] else "-"))
            print("  %-22s repeats: %s" % ("", ", ".join(
                "%.2f s %.0f MiB" % (r["total_s"], r["rss"] / 2**20) if "error" not in r
                else r["error"] for r in rs)))
        br = res["bridge"]
        for other in [name for name, _ in sides if name != "bridge"]:
            o = res[other]
            if not [r for r in o if "error" not in r] or not [r for r in br if "error" not in r]:
                continue
            tx, per = ratio(br, o, "total_s")
            mx, _ = ratio(br, o, "rss")
            print("  bridge / %s: time %.3fx (per repeat %s), peak RSS %.3fx; rel. error: "
                  "LR metagradient %.2e, data-weight metagradient %.2e"
                  % (other, tx, " ".join("%.3f" % x for x in per), mx,
                     rel_out(tmp, "bridge", other, T, "lr"),
                     rel_out(tmp, "bridge", other, T, "w")))
        if not args.skip_unrolled:
            # the yardstick: in f32 any two implementations part over long horizons
            print("  builtin vs torch unrolled: rel. error LR metagradient %.2e, data-weight "
                  "metagradient %.2e" % (rel_out(tmp, "builtin", "torch unrolled", T, "lr"),
                                         rel_out(tmp, "builtin", "torch unrolled", T, "w")))


def rel_out(tmp, a, b, T, what):
    name = lambda s: os.path.join(tmp, "%s-%d" % (s.replace(" ", "_"), T))  # noqa: E731
    try:
        return rel(name(a), name(b), what)
    except OSError:
        return float("nan")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""torch_gpt.py - libmetagrad's built-in GPT against PyTorch on the same model
and data, each side in its own subprocess so that peak memory (VmHWM of
/proc/self/status) is measured per side.  A sibling of torch_compare.py,
with its conventions.

Model and data: the tiny GPT of examples/lm_data_selection.c (byte
vocabulary 256, context 64, width 64, 2 layers, 4 heads; mgrad_model_create_gpt,
written out in torch as bindings/python/tests/test_gpt_torch.py does), f32,
on --train windows of 65 bytes of the fortunes corpus (Debian's fortunes;
validation: --val further windows), batch --batch, SGD with momentum 0.9,
the same θ0 (drawn by metagrad, mapped into torch through the documented
layout, docs/api.md "Sequence models") and the same explicit batches on
both sides.  Metaparameters: the data weights (one per training sequence)
and the per-step LR; φ = mean validation next-token loss at θ_T.

Measured, per side:
  training     plain training of --steps T steps (ours: binomial with one
               slot, so nothing is kept for a reverse pass; torch:
               torch.optim.SGD), after a warm-up run: tokens/s (T · B · 64
               predicted tokens per second);
  metagradient train + reverse at the same T (ours: binomial checkpointing
               with 2⌈log2 T⌉ slots; torch: the T steps unrolled with
               torch.autograd.grad(create_graph=True), then φ.backward()),
               its time and the peak RSS, and the relative error
               ‖a − b‖/‖b‖ of the two metagradients against torch;
  memory       ours only, once: the metagradient at --mem-steps (default
               1000) steps under a checkpoint budget of --budget-mib MiB
               (the auto schedule), its peak RSS, the library's peak
               context memory, slots and recomputed steps; torch unrolled
               is reported as its measured growth per step at T times
               --mem-steps (unrolling 1000 steps does not fit in memory).
Repeats run interleaved (torch with each --torch-threads value, then ours,
then torch again ...), so that a slow spell of the machine hits every side
of a repeat alike; times are medians over --repeats (>= 3 for a report).
The torch side runs once per --torch-threads value
(torch.set_num_threads(n); OPENBLAS/OMP threads = --threads).

Run from the repository root:
  PYTHONPATH=bindings/python METAGRAD_LIBRARY=<build>/lib/libmetagrad.so \\
    /usr/bin/python3 bench/torch_gpt.py --steps 20 --repeats 3 --torch-threads 1 2
Needs python3-torch (scripts/install-bench-deps.sh), numpy and the fortunes
package.
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
import torch_compare as tc  # noqa: E402  (the child runner, peak RSS, rel)

V, L = 256, 64  # byte vocabulary, context
FORTUNES = "/usr/share/games/fortunes/[a-z]*"


def prepare(tmp, args):
    """Windows of fortunes as .npy files, batches, θ0."""
    import metagrad as mg
    ctx = mg.Context(dtype="f32")
    with mg.TextCorpus(ctx) as corpus:
        corpus.add(FORTUNES, split="percent", exclude="*.dat")
        ds, _ = corpus.examples(L + 1)
    tokens = np.asarray(ds.get_tokens(), dtype=np.int64)
    ds.close()
    rng = np.random.default_rng(args.seed)
    need = args.train + args.val
    if len(tokens) < need:
        sys.exit("the fortunes give %d windows; %d needed" % (len(tokens), need))
    rows = rng.permutation(len(tokens))[:need]
    paths = {"x": os.path.join(tmp, "x.npy"), "xv": os.path.join(tmp, "xv.npy"),
             "batches": os.path.join(tmp, "batches.npy"),
             "theta0": os.path.join(tmp, "theta0.npy")}
    np.save(paths["x"], tokens[rows[:args.train]])
    np.save(paths["xv"], tokens[rows[args.train:]])
    tmax = max(args.steps + [args.mem_steps])
    per_epoch = args.train // args.batch
    batches = np.concatenate([rng.permutation(args.train)[:per_epoch * args.batch]
                              for _ in range(tmax // per_epoch + 1)])[:tmax * args.batch]
    np.save(paths["batches"], batches.reshape(tmax, args.batch).astype(np.int64))
    model = mg.Model.gpt(ctx, V, L, args.width, args.layers, args.heads).init_params(args.seed)
    np.save(paths["theta0"], np.asarray(model.params, dtype=np.float32))
    model.close()
    ctx.close()
    return paths


# ---------------------------------------------------------------- children

def child_ours(cfg):
    import metagrad as mg
    T, B = cfg["steps"], cfg["batch"]
    p = cfg["paths"]
    ctx = mg.Context(dtype="f32", threads=cfg["threads"])
    train = mg.Dataset.tokens(ctx, np.load(p["x"]), V)
    val = mg.Dataset.tokens(ctx, np.load(p["xv"]), V)
    batches = np.load(p["batches"])[:T]
    model = mg.Model.gpt(ctx, V, L, cfg["width"], cfg["layers"], cfg["heads"])
    model.params = np.load(p["theta0"])
    common = dict(validation=val, steps=T, batch_size=B, lr=cfg["lr"], momentum=0.9,
                  batches=batches, loss="next_token")
    out = {}
    if cfg["plain"]:
        plain = mg.Run(model, train, checkpoint="binomial", checkpoint_slots=1, **common)
        plain.train()  # warm-up
        t0 = time.perf_counter()
        plain.train()
        out["plain_s"] = time.perf_counter() - t0
        plain.close()
    if cfg["budget_mib"]:
        opts = dict(checkpoint="auto", checkpoint_budget_bytes=cfg["budget_mib"] << 20)
    else:
        opts = dict(checkpoint="binomial", checkpoint_slots=2 * max(1, math.ceil(math.log2(T))))
    run = mg.Run(model, train, **common, **opts)
    lrm = run.add_meta("lr_schedule")
    wm = run.add_meta("data_weights")
    t0 = time.perf_counter()
    phi = run.train()
    t1 = time.perf_counter()
    run.reverse()
    t2 = time.perf_counter()
    out.update(phi=phi, train_s=t1 - t0, reverse_s=t2 - t1, total_s=t2 - t0,
               ctx_peak=ctx.memory()[1], rss=tc.peak_rss(),
               slots=run.stats["checkpoint_slots"], recomputed=run.stats["steps_recomputed"])
    np.save(cfg["out"] + ".lr.npy", np.asarray(lrm.grad, dtype=np.float64))
    np.save(cfg["out"] + ".w.npy", np.asarray(wm.grad, dtype=np.float64))
    return out


def torch_losses(torch, p, tokens, cfg):
    """Per-sequence next-token losses of the GPT with parameters p (a list in
    the built-in order: docs/api.md, "Sequence models")."""
    F = torch.nn.functional
    D, H, n = cfg["width"], cfg["heads"], tokens.shape[0]
    e = D // H
    it = iter(p)
    E, P = next(it), next(it)
    x = E[tokens[:, :L]] + P
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    for _ in range(cfg["layers"]):
        g1, b1, Wqkv, bqkv, Wo, bo, g2, b2, W1, c1, W2, c2 = (next(it) for _ in range(12))
        h = F.layer_norm(x, (D,), g1, b1, eps=1e-5)
        qkv = F.linear(h, Wqkv, bqkv)
        q, k, v = (qkv[..., i * D:(i + 1) * D].reshape(n, L, H, e).transpose(1, 2)
                   for i in range(3))
        s = (q @ k.transpose(-1, -2)) / e ** 0.5
        a = torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1)
        x = x + F.linear((a @ v).transpose(1, 2).reshape(n, L, D), Wo, bo)
        h = F.layer_norm(x, (D,), g2, b2, eps=1e-5)
        x = x + F.linear(F.gelu(F.linear(h, W1, c1)), W2, c2)
    gf, bf, Wh, bh = (next(it) for _ in range(4))
    logits = F.linear(F.layer_norm(x, (D,), gf, bf, eps=1e-5), Wh, bh)
    ce = F.cross_entropy(logits.reshape(n * L, V), tokens[:, 1:].reshape(-1), reduction="none")
    return ce.reshape(n, L).mean(dim=1)


def torch_shapes(cfg):
    D = cfg["width"]
    shapes = [(V, D), (L, D)]
    for _ in range(cfg["layers"]):
        shapes += [(D,), (D,), (3 * D, D), (3 * D,), (D, D), (D,), (D,), (D,),
                   (4 * D, D), (4 * D,), (D, 4 * D), (D,)]
    return shapes + [(D,), (D,), (V, D), (V,)]


def child_torch(cfg):
    import torch
    torch.set_num_threads(cfg["torch_threads"])
    T, B = cfg["steps"], cfg["batch"]
    p = cfg["paths"]
    X = torch.from_numpy(np.load(p["x"]))
    XV = torch.from_numpy(np.load(p["xv"]))
    batches = torch.from_numpy(np.load(p["batches"])[:T])
    th = torch.from_numpy(np.load(p["theta0"]))
    params0, o = [], 0
    for s in torch_shapes(cfg):
        k = int(np.prod(s))
        params0.append(th[o:o + k].reshape(s).clone())
        o += k
    assert o == th.numel(), "parameter layouts differ: %d vs %d" % (o, th.numel())
    lr, mu = cfg["lr"], 0.9
    out = {}

    def plain():
        ps = [q.clone().requires_grad_(True) for q in params0]
        opt = torch.optim.SGD(ps, lr=lr, momentum=mu)
        for t in range(T):
            loss = torch_losses(torch, ps, X.index_select(0, batches[t]), cfg).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            torch_losses(torch, ps, XV, cfg).mean()
    if cfg["plain"]:
        plain()  # warm-up
        t0 = time.perf_counter()
        plain()
        out["plain_s"] = time.perf_counter() - t0

    w = torch.ones(X.shape[0], requires_grad=True)
    lrs = torch.full((T,), lr, requires_grad=True)
    ps = [q.clone().requires_grad_(True) for q in params0]
    leaves = ps
    bufs = [torch.zeros_like(q) for q in ps]
    rss0 = tc.peak_rss()
    t0 = time.perf_counter()
    for t in range(T):
        idx = batches[t]
        ell = torch_losses(torch, ps, X.index_select(0, idx), cfg)
        g = torch.autograd.grad((w[idx] * ell).sum() / B, ps, create_graph=True)
        bufs = [mu * m + gi for m, gi in zip(bufs, g)]
        ps = [q - lrs[t] * m for q, m in zip(ps, bufs)]
    phi = torch_losses(torch, ps, XV, cfg).mean()
    t1 = time.perf_counter()
    phi.backward()
    t2 = time.perf_counter()
    del leaves
    out.update(phi=float(phi), train_s=t1 - t0, reverse_s=t2 - t1, total_s=t2 - t0,
               rss=tc.peak_rss(), rss_before_unroll=rss0)
    np.save(cfg["out"] + ".lr.npy", lrs.grad.double().numpy())
    np.save(cfg["out"] + ".w.npy", w.grad.double().numpy())
    return out


# ---------------------------------------------------------------- parent

def run_child(side, cfg, timeout):
    return tc.run_child(side, cfg, timeout, script=__file__)


def median(xs):
    return float(np.median(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[20],
                    help="T of the training and metagradient comparison")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--train", type=int, default=2048, help="training sequences")
    ap.add_argument("--val", type=int, default=256, help="validation sequences")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-threads", type=int, nargs="+", default=[1, 2],
                    help="torch.set_num_threads for the torch side, one torch side per "
                         "value; OPENBLAS/OMP threads stay --threads")
    ap.add_argument("--repeats", type=int, default=3,
                    help="repeats of the comparison (0: only the memory measurement)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mem-steps", type=int, default=1000,
                    help="T of the memory measurement (ours; 0: skip it)")
    ap.add_argument("--budget-mib", type=int, default=16,
                    help="checkpoint budget of the memory measurement (MiB)")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        side, cfg = args.child[0], json.loads(args.child[1])
        out = child_ours(cfg) if side == "ours" else child_torch(cfg)
        print(json.dumps(out))
        return
    import torch
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    print("GPT V %d, context %d, width %d, %d layers, %d heads; f32, %d training sequences, "
          "batch %d, SGD lr %g momentum 0.9; T in %s; %d BLAS threads each side, torch "
          "threads %s, torch %s; %d repeat(s) (medians); load average at start %.2f %.2f %.2f "
          "on %d CPUs" % (V, L, args.width, args.layers, args.heads, args.train, args.batch,
                          args.lr, args.steps, args.threads, args.torch_threads,
                          torch.__version__, args.repeats, *load, os.cpu_count()))
    sys.stdout.flush()
    with tempfile.TemporaryDirectory() as tmp:
        paths = prepare(tmp, args)
        base = dict(batch=args.batch, width=args.width, layers=args.layers, heads=args.heads,
                    lr=args.lr, threads=args.threads, paths=paths)
        sides = [("torch %d thread%s" % (tt, "s" if tt > 1 else ""), "torch", tt)
                 for tt in args.torch_threads] + [("ours", "ours", args.threads)]
        runs = {}
        for T in args.steps if args.repeats > 0 else []:
            runs = {name: [] for name, _, _ in sides}
            for rep in range(args.repeats):  # interleaved: see the docstring
                for name, side, tt in sides:
                    done = runs[name]
                    if done and "error" in done[-1]:
                        continue
                    cfg = dict(base, steps=T, torch_threads=tt, plain=True, budget_mib=0,
                               out=os.path.join(tmp, "%s-%d-%d" % (side, tt, T)))
                    r = run_child(side, cfg, args.timeout)
                    r["out"] = cfg["out"]
                    done.append(r)
            print("\nT = %d (%d tokens per step):" % (T, args.batch * L))
            ok = {n: [r for r in rs if "error" not in r] for n, rs in runs.items()}
            for name, rs in runs.items():
                if not ok[name]:
                    print("  %-16s %s" % (name, rs[-1]["error"]))
                    continue
                plain = median([r["plain_s"] for r in ok[name]])
                meta = median([r["total_s"] for r in ok[name]])
                rss = median([r["rss"] for r in ok[name]])
                print("  %-16s training %8.0f tokens/s (%.2f s)   metagradient %7.2f s "
                      "(train %.2f + reverse %.2f)   peak RSS %6.0f MiB   φ %.6f"
                      % (name, T * args.batch * L / plain, plain, meta,
                         median([r["train_s"] for r in ok[name]]),
                         median([r["reverse_s"] for r in ok[name]]), rss / 2**20,
                         ok[name][0]["phi"]))
            if not ok["ours"]:
                continue
            ours = ok["ours"]
            for name, _, _ in sides[:-1]:
                if not ok[name]:
                    continue
                n = min(len(ours), len(ok[name]))
                tr = median([ok[name][i]["plain_s"] / ours[i]["plain_s"] for i in range(n)])
                mr = median([ok[name][i]["total_s"] / ours[i]["total_s"] for i in range(n)])
                lr_err = tc.rel(np.load(ours[0]["out"] + ".lr.npy"),
                             np.load(ok[name][0]["out"] + ".lr.npy"))
                w_err = tc.rel(np.load(ours[0]["out"] + ".w.npy"),
                            np.load(ok[name][0]["out"] + ".w.npy"))
                print("  ours vs %-16s training speed x%.2f, metagradient speed x%.2f "
                      "(medians of per-repeat ratios; > 1: ours faster); peak RSS x%.2f; "
                      "metagradients ‖ours − torch‖/‖torch‖: LR %.1e, data weights %.1e"
                      % (name, tr, mr, median([r["rss"] for r in ok[name]])
                         / median([r["rss"] for r in ours]), lr_err, w_err))
        if args.mem_steps:
            T = args.mem_steps
            cfg = dict(base, steps=T, torch_threads=args.threads, plain=False,
                       budget_mib=args.budget_mib, out=os.path.join(tmp, "mem-%d" % T))
            r = run_child("ours", cfg, args.timeout)
            print("\nmemory at T = %d:" % T)
            if "error" in r:
                print("  ours: %s" % r["error"])
            else:
                print("  ours, budget %d MiB (auto): metagradient %.1f s (train %.1f + reverse "
                      "%.1f), peak RSS %.0f MiB, library peak %.1f MiB, %d slots, %d steps "
                      "recomputed" % (args.budget_mib, r["total_s"], r["train_s"],
                                      r["reverse_s"], r["rss"] / 2**20, r["ctx_peak"] / 2**20,
                                      r["slots"], r["recomputed"]))
            # torch unrolled keeps every step's graph: its growth per step
            # at the last T above, times the memory run's T
            Tl = args.steps[-1]
            for name, _, _ in sides[:-1]:
                rs = [x for x in runs.get(name, []) if "error" not in x]
                if rs:
                    grow = median([(x["rss"] - x["rss_before_unroll"]) / Tl for x in rs])
                    print("  %s unrolled: %.2f MiB per step at T = %d, so about %.1f GiB at "
                          "T = %d (not run)" % (name, grow / 2**20, Tl, grow * T / 2**30, T))

if __name__ == "__main__":
    main()

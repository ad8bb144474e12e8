"""A tiny GPT against PyTorch (skipped without torch).

The same 2-layer GPT (token and positional embeddings, pre-norm blocks with
causal multi-head self-attention and a GELU MLP, final layer norm, dense to
the vocabulary) written in torch from scratch, θ0 mapped from the built-in
model through the documented layout (docs/api.md, "Sequence models"),
trained for T steps of SGD with momentum and weight decay unrolled with
create_graph in f64; φ and the metagradients of the LR schedule, the data
weights, θ0, weight decay and momentum agree with the library's to 1e-8
relative.
"""

import numpy as np
import pytest

import metagrad as mg

torch = pytest.importorskip("torch")
F = torch.nn.functional

V, L, D, LAYERS, HEADS = 5, 4, 4, 2, 2
N, NVAL, T, B = 8, 4, 4, 3
LR, MU, WD = 0.3, 0.8, 0.01


def data():
    rng = np.random.default_rng(3)
    x = rng.integers(0, V, (N, L + 1)).astype(np.float64)
    xv = rng.integers(0, V, (NVAL, L + 1)).astype(np.float64)
    batches = np.concatenate([rng.permutation(N)[:B] for _ in range(T)]).astype(np.int64)
    return x, xv, batches


def layout():
    """(name, shape) of every parameter in the built-in order: a dense layer
    holds W [out, in] then b; a layer norm γ then β."""
    shapes = [("E", (V, D)), ("P", (L, D))]
    for l in range(LAYERS):
        shapes += [("ln1g%d" % l, (D,)), ("ln1b%d" % l, (D,)),
                   ("Wqkv%d" % l, (3 * D, D)), ("bqkv%d" % l, (3 * D,)),
                   ("Wo%d" % l, (D, D)), ("bo%d" % l, (D,)),
                   ("ln2g%d" % l, (D,)), ("ln2b%d" % l, (D,)),
                   ("W1%d" % l, (4 * D, D)), ("b1%d" % l, (4 * D,)),
                   ("W2%d" % l, (D, 4 * D)), ("b2%d" % l, (D,))]
    shapes += [("lnfg", (D,)), ("lnfb", (D,)), ("Wh", (V, D)), ("bh", (V,))]
    return shapes


def unflatten(theta):
    out, o = {}, 0
    for name, shape in layout():
        n = int(np.prod(shape))
        out[name] = theta[o:o + n].reshape(shape)
        o += n
    assert o == theta.shape[0]
    return out


def gpt_losses(p, tokens):
    """Per-example next-token losses: the mean over positions of the
    cross-entropy of token p + 1 at position p."""
    n = tokens.shape[0]
    ids = tokens[:, :L]
    e = D // HEADS
    x = p["E"][ids] + p["P"]
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    for l in range(LAYERS):
        h = F.layer_norm(x, (D,), p["ln1g%d" % l], p["ln1b%d" % l], eps=1e-5)
        qkv = h @ p["Wqkv%d" % l].T + p["bqkv%d" % l]
        q, k, v = (qkv[..., i * D:(i + 1) * D].reshape(n, L, HEADS, e).transpose(1, 2)
                   for i in range(3))
        s = (q @ k.transpose(-1, -2)) / e ** 0.5
        a = torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1)
        y = (a @ v).transpose(1, 2).reshape(n, L, D)
        x = x + y @ p["Wo%d" % l].T + p["bo%d" % l]
        h = F.layer_norm(x, (D,), p["ln2g%d" % l], p["ln2b%d" % l], eps=1e-5)
        x = x + F.gelu(h @ p["W1%d" % l].T + p["b1%d" % l]) @ p["W2%d" % l].T + p["b2%d" % l]
    x = F.layer_norm(x, (D,), p["lnfg"], p["lnfb"], eps=1e-5)
    logits = x @ p["Wh"].T + p["bh"]
    ce = F.cross_entropy(logits.reshape(n * L, V), tokens[:, 1:].reshape(-1), reduction="none")
    return ce.reshape(n, L).mean(dim=1)


def unrolled(theta0, x, xv, batches):
    X = torch.tensor(x, dtype=torch.int64)
    XV = torch.tensor(xv, dtype=torch.int64)
    w = torch.ones(N, dtype=torch.float64, requires_grad=True)
    lrs = torch.full((T,), LR, dtype=torch.float64, requires_grad=True)
    mu = torch.tensor(MU, dtype=torch.float64, requires_grad=True)
    wd = torch.tensor(WD, dtype=torch.float64, requires_grad=True)
    th0 = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    th, m = th0, torch.zeros_like(th0)
    for t in range(T):
        idx = torch.from_numpy(batches[t * B:(t + 1) * B])
        ell = gpt_losses(unflatten(th), X[idx])
        g, = torch.autograd.grad((w[idx] * ell).sum() / B, th, create_graph=True)
        m = mu * m + g + wd * th
        th = th - lrs[t] * m
    phi = gpt_losses(unflatten(th), XV).mean()
    phi.backward()
    return float(phi), {"lr_schedule": lrs.grad.numpy(), "data_weights": w.grad.numpy(),
                        "initial_params": th0.grad.numpy(), "weight_decay": wd.grad.numpy(),
                        "momentum": mu.grad.numpy()}


def test_gpt_matches_unrolled_pytorch():
    x, xv, batches = data()
    with mg.Context(dtype="f64", seed=11) as ctx:
        model = mg.Model.gpt(ctx, V, L, D, LAYERS, HEADS)
        assert model.output_size == L * V
        theta0 = model.params
        assert theta0.shape[0] == sum(int(np.prod(s)) for _, s in layout())
        train = mg.Dataset(ctx, x)
        val = mg.Dataset(ctx, xv)
        run = mg.Run(model, train, validation=val, steps=T, batch_size=B, lr=LR, momentum=MU,
                     weight_decay=WD, batches=batches, loss="next_token")
        metas = {k: run.add_meta(k) for k in
                 ("lr_schedule", "data_weights", "initial_params", "weight_decay", "momentum")}
        phi = run.train()
        run.reverse()
        ours = {k: np.asarray(m.grad) for k, m in metas.items()}
        for h in (run, train, val, model):
            h.close()
    phi_t, theirs = unrolled(theta0, x, xv, batches)
    assert abs(phi - phi_t) <= 1e-12 * abs(phi_t), (phi, phi_t)
    for kind, ref in theirs.items():
        ref = np.atleast_1d(ref)
        got = np.asarray(ours[kind]).reshape(ref.shape)
        err = np.abs(got - ref).max() / np.abs(ref).max()
        print("gpt vs unrolled torch %-15s max rel diff %.2e" % (kind, err))
        assert np.abs(ref).max() > 0, kind
        assert err <= 1e-8, (kind, err)


def test_gpt_refusals():
    x, xv, _ = data()
    with mg.Context(dtype="f64") as ctx:
        model = mg.Model(ctx, L + 1).token_embedding(V, D, L).positional_embedding() \
            .transformer_block(HEADS, 2, 0.1).layer_norm().dense(V)
        train, val = mg.Dataset(ctx, x), mg.Dataset(ctx, xv)
        run = mg.Run(model, train, validation=val, steps=2, batch_size=2, lr=0.1,
                     loss="next_token")
        with pytest.raises(mg.MetagradError) as e:
            run.add_meta("inputs")
        assert "token ids" in str(e.value)
        with pytest.raises(mg.MetagradError):
            run.add_meta("soft_labels")
        run.train()
        for h in (run, train, val, model):
            h.close()

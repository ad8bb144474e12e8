"""score(): the same numbers as the retrainings made by hand through Run
(bit for bit), per-seed values in seed order, settings applied (also with
meta options), the model's θ0 given back, several evaluation sets, and
refusals with the library's message."""

import math

import pytest

import metagrad as mg
from metagrad._api import Score, score  # TODO: mg.score once __init__ exports it

from _common import C, F, NTRAIN, NVAL, T, B, make_data

MIX = 0x5bd1e995


@pytest.fixture
def setup():
    ctx = mg.Context(dtype="f64", seed=7)
    model = mg.Model(ctx, F).dense(8).activation("tanh").dense(C)
    train = make_data(ctx, NTRAIN, 11, "cross_entropy")
    test = make_data(ctx, NVAL, 23, "cross_entropy")
    val = make_data(ctx, NVAL, 29, "cross_entropy")
    yield ctx, model, train, test, val
    for h in (train, test, val, model, ctx):
        h.close()


def by_hand(model, train, evals, seeds, weights=None, **opts):
    """The procedure of metagrad/score.h through Model and Run."""
    theta0 = model.params
    out = [[] for _ in evals]
    for seed in seeds:
        model.init_params(seed)
        with mg.Run(model, train, validation=evals[0], steps=T, batch_size=B,
                    shuffle_seed=seed ^ MIX, **opts) as run:
            if weights is not None:
                run.add_meta("data_weights").value = weights
            run.train()
            for e, ds in enumerate(evals):
                out[e].append(run.evaluate(ds))
    model.params = theta0
    return out


def test_matches_by_hand(setup):
    ctx, model, train, test, val = setup
    theta0 = list(model.params)
    w = [0.5 + (i % 3) / 2 for i in range(NTRAIN)]
    got = score(model, train, [test, val], steps=T, batch_size=B, lr=0.2, momentum=0.5,
                seeds=3, first_seed=40, settings={"data_weights": w})
    assert list(model.params) == theta0
    want = by_hand(model, train, [test, val], [40, 41, 42], weights=w, lr=0.2, momentum=0.5)
    for e in range(2):
        assert isinstance(got[e], Score)
        assert got[e].seeds == [40, 41, 42]
        assert got[e].losses == [lv for lv, _ in want[e]]
        assert got[e].accuracies == [a for _, a in want[e]]
        losses = got[e].losses
        mean = sum(losses) / 3
        sd = math.sqrt(sum((x - mean) ** 2 for x in losses) / 2)
        assert got[e].n == 3
        assert got[e].loss_mean == mean and got[e].loss_std == sd
        assert 0 <= got[e].accuracy_mean <= 1


def test_single_set_seed_list_and_flags(setup):
    ctx, model, train, test, val = setup
    one = score(model, train, test, steps=T, batch_size=B, seed_list=[9, 2])
    assert isinstance(one, Score) and one.seeds == [9, 2] and one.n == 2
    again = score(model, train, test, steps=T, batch_size=B, seeds=1, first_seed=2)
    assert again.losses == one.losses[1:] and again.loss_std == 0
    same = score(model, train, test, steps=T, batch_size=B, seeds=3, redraw_init=False,
                 redraw_order=False, shuffle_seed=4)
    assert same.losses[0] == same.losses[1] == same.losses[2] and same.loss_std == 0
    assert "Score n=3" in repr(same)


def test_settings_forms(setup):
    ctx, model, train, test, val = setup
    sched = [0.3 * (T - t) / T for t in range(T)]
    a = score(model, train, test, steps=T, batch_size=B, seeds=2,
              settings=[("lr_schedule", sched), ("weight_decay", 0.01)])
    b = score(model, train, test, steps=T, batch_size=B, seeds=2, lr_schedule=sched,
              weight_decay=0.01)
    assert a.losses == b.losses
    rows = [1, 4]
    x = [[0.25] * F, [-0.5] * F]
    c = score(model, train, test, steps=T, batch_size=B, seeds=2,
              settings={"inputs": {"value": x, "rows": rows}})
    assert c.losses != score(model, train, test, steps=T, batch_size=B, seeds=2).losses


def test_errors(setup):
    ctx, model, train, test, val = setup
    theta0 = list(model.params)
    with pytest.raises(mg.InvalidError, match="seeds"):
        score(model, train, test, steps=T, batch_size=B, seeds=0)
    with pytest.raises(mg.SizeError, match="setting 0"):
        score(model, train, test, steps=T, batch_size=B, settings={"data_weights": [1.0]})
    with pytest.raises(mg.InvalidError, match="setting 0"):
        score(model, train, test, steps=T, batch_size=B,
              settings={"lr_schedule": [-0.1] * T})
    with pytest.raises(mg.InvalidError, match="unknown options"):
        score(model, train, test, steps=T, batch_size=B,
              settings={"inputs": {"value": [0.0] * F, "row": [1]}})
    with pytest.raises(mg.InvalidError, match="kind"):
        score(model, train, test, steps=T, batch_size=B, settings={"colour": [1.0]})
    with pytest.raises(mg.InvalidError, match="INITIAL_PARAMS"):
        score(model, train, test, steps=T, batch_size=B,
              settings={"initial_params": theta0})
    with pytest.raises(TypeError):
        score(model, train, [test, "x"], steps=T, batch_size=B)
    with pytest.raises(mg.InvalidError):
        score(model, train, [], steps=T, batch_size=B)
    other = mg.Context(dtype="f64")
    foreign = make_data(other, NVAL, 23, "cross_entropy")
    with pytest.raises(mg.InvalidError):
        score(model, train, [test, foreign], steps=T, batch_size=B)
    foreign.close()
    other.close()
    assert list(model.params) == theta0
    # explicit batches: the batch order cannot be redrawn
    batches = [[(t * B + i) % NTRAIN for i in range(B)] for t in range(T)]
    with pytest.raises(mg.InvalidError, match="redraw_order"):
        score(model, train, test, steps=T, batch_size=B, batches=batches)
    ok = score(model, train, test, steps=T, batch_size=B, batches=batches, redraw_order=False,
               seeds=2)
    assert ok.losses[0] != ok.losses[1]  # θ0 still differs

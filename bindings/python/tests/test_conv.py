"""Convolutional and normalisation layers (metagrad/model.h) through Python:
shapes and parameter counts as documented, bad arguments refused, and
whole-run metagradients of tiny CNNs against central finite differences of
whole training runs in f64 (relative error <= 1e-6)."""

import pytest

import metagrad as mg
from _common import SplitMix, rel_err
from test_fd import fd_check

CH, HW, C = 2, 6, 3


def image_data(ctx, n, seed):
    s = SplitMix(seed)
    x = [[[s.fill(HW, 1.0) for _ in range(HW)] for _ in range(CH)] for _ in range(n)]
    y = [int((s.rand() + 1) * 1.5) % C for _ in range(n)]
    return mg.Dataset(ctx, x, labels=y, num_classes=C)


def cnn_a(ctx):
    """conv-bn-tanh-avgpool-conv-layernorm-flatten-dense"""
    return (mg.Model(ctx, (CH, HW, HW))
            .conv2d(3, 3, padding=1, init="kaiming_uniform")   # [3, 6, 6]
            .batch_norm()
            .activation("tanh")
            .avg_pool(2)                                         # [3, 3, 3]
            .conv2d(4, 2, stride=1)                              # [4, 2, 2]
            .layer_norm()
            .flatten()                                           # [16]
            .dense(C)
            .scale(0.5))


def cnn_b(ctx):
    """strided conv, gelu, overlapping max pool, dropout, global avg pool"""
    return (mg.Model(ctx, (CH, HW, HW))
            .conv2d(4, 3, stride=2, padding=1)                   # [4, 3, 3]
            .activation("gelu")
            .max_pool(2, stride=1)                               # [4, 2, 2]
            .dropout(0.25)
            .global_avg_pool()                                   # [4]
            .dense(C))


class CnnFixture:
    def __init__(self, make):
        self.ctx = mg.Context(dtype="f64", seed=5)
        self.model = make(self.ctx)
        self.train = image_data(self.ctx, 12, 1)
        self.val = image_data(self.ctx, 8, 2)
        self.run = mg.Run(self.model, self.train, validation=self.val, steps=6, batch_size=4,
                          lr=0.2, momentum=0.5, weight_decay=0.01, shuffle_seed=3)

    def close(self):
        for h in (self.run, self.train, self.val, self.model, self.ctx):
            h.close()


def test_shapes_and_param_counts():
    with mg.Context(dtype="f64") as ctx:
        m = mg.Model(ctx, (1, 8, 8)).conv2d(3, 3)        # [3, 6, 6]
        assert m.num_params == 3 * 1 * 9 + 3 and m.output_size == 3 * 6 * 6
        m.conv2d(5, 3, stride=2, padding=1)              # (6 + 2 − 3) / 2 + 1 = 3
        assert m.output_size == 5 * 3 * 3
        m.batch_norm(1e-3)                               # γ, β per channel
        assert m.num_params == 30 + 5 * 3 * 9 + 5 + 2 * 5
        m.max_pool(2, 1)
        assert m.output_size == 5 * 2 * 2
        m.layer_norm()                                   # γ, β of the output's size
        assert m.num_params == 30 + 140 + 10 + 2 * 20
        m.dropout(0.5).avg_pool(2)
        assert m.output_size == 5
        m.flatten().dense(2)
        assert m.output_size == 2

        r = mg.Model(ctx, (4, 8, 8)).resnet_block(4)     # identity shortcut
        # 2 convs 4->4 3x3 with bias, 2 batch norms
        assert r.num_params == 2 * (4 * 4 * 9 + 4) + 2 * 2 * 4
        assert r.output_size == 4 * 8 * 8
        r.resnet_block(6, stride=2)                      # projection shortcut
        assert r.output_size == 6 * 4 * 4
        assert r.num_params == 2 * (4 * 4 * 9 + 4) + 16 + \
            (6 * 4 * 9 + 6) + (6 * 6 * 9 + 6) + 2 * 2 * 6 + (6 * 4 + 6) + 2 * 6
        r.global_avg_pool()
        assert r.output_size == 6


def test_bad_layers_raise():
    with mg.Context(dtype="f64") as ctx:
        flat = mg.Model(ctx, 16)
        with pytest.raises(mg.ShapeError):
            flat.conv2d(2, 3)                 # needs [C, H, W]
        with pytest.raises(mg.ShapeError):
            flat.max_pool(2)
        m = mg.Model(ctx, (1, 4, 4))
        with pytest.raises(mg.InvalidError):
            m.conv2d(2, 3, padding=3)         # padding <= kernel − 1
        with pytest.raises(mg.InvalidError):
            m.conv2d(0, 3)
        with pytest.raises(mg.InvalidError):
            m.dropout(1.0)
        with pytest.raises(mg.InvalidError):
            m.batch_norm(0.0)
        with pytest.raises(mg.InvalidError):
            m.conv2d(2, 3, stride=0)
        with pytest.raises(mg.DtypeError):
            m.conv2d(2.0, 3)
        with pytest.raises(mg.InvalidError, match="choose one of"):
            m.conv2d(2, 3, init="he")
        with pytest.raises(mg.InvalidError):
            m.conv2d(2, 2 ** 31)              # does not fit int32: checked in Python
        with pytest.raises((mg.ShapeError, mg.InvalidError)):
            m.avg_pool(5)                     # window larger than the image
        assert m.num_params == 0              # failed calls left it unchanged
        with pytest.raises(mg.ShapeError):
            mg.Model(ctx, 8).resnet_block(2)  # needs [C, H, W]


@pytest.mark.parametrize("make,kind,seed", [
    (cnn_a, "data_weights", 1), (cnn_a, "lr_schedule", 2), (cnn_a, "inputs", 3),
    (cnn_a, "initial_params", 4), (cnn_b, "data_weights", 5), (cnn_b, "momentum", 6),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_cnn_fd_whole_run(make, kind, seed):
    fx = CnnFixture(make)
    try:
        meta = fx.run.add_meta(kind, rows=[0, 5] if kind == "inputs" else None)
        direction, fd = fd_check(fx, meta, seed)
    finally:
        fx.close()
    err = rel_err(direction, fd)
    print("cnn fd %s %-14s <g,v> = %+.10e fd = %+.10e rel err %.2e"
          % (make.__name__, kind, direction, fd, err))
    assert err <= 1e-6, (direction, fd)


def test_dropout_replays_exactly():
    """Dropout masks are a pure function of (seed, step, layer, row, element):
    two trainings give the same bits, and checkpoint replay the same
    metagradient."""
    grads = []
    for checkpoint in ("store_all", "binomial"):
        fx = CnnFixture(cnn_b)
        try:
            run = mg.Run(fx.model, fx.train, validation=fx.val, steps=6, batch_size=4, lr=0.2,
                         checkpoint=checkpoint, checkpoint_slots=2)
            with run:
                w = run.add_meta("data_weights")
                assert run.train() == run.train()
                run.reverse()
                grads.append(list(w.grad))
        finally:
            fx.close()
    assert grads[0] == grads[1]

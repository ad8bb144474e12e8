"""Datasets from files and their transforms (metagrad/data.h) through
Python: files written here in each format (plain and gzip) read back to the
values written; normalise, scale, split and subset as documented; the real
Fashion-MNIST files when installed; malformed files raise."""

import gzip
import os
import struct

import pytest

import metagrad as mg

np = pytest.importorskip("numpy")

FMNIST = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def ctx():
    with mg.Context(dtype="f64", seed=1) as c:
        yield c


def write(path, data, compress=False):
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def idx_bytes(arr, type_code, fmt):
    """An IDX file: magic 0 0 type ndim, big-endian dims, big-endian values."""
    head = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">i", d) for d in arr.shape)
    return head + arr.astype(fmt).tobytes()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_idx_u8(ctx, tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 3, 4), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 1, 0, 2], dtype=np.uint8)
    ip = write(tmp_path / "img", idx_bytes(images, 0x08, ">u1"), compress)
    lp = write(tmp_path / "lab", idx_bytes(labels, 0x08, ">u1"), compress)
    ds = mg.Dataset.load_idx(ctx, ip, lp, scale=1 / 255)
    assert (len(ds), ds.shape, ds.features, ds.num_classes) == (7, (3, 4), 12, 4)
    x = ds.get_inputs()
    assert isinstance(x, np.ndarray) and x.shape == (7, 3, 4) and x.dtype == np.float64
    np.testing.assert_allclose(x, images * (1 / 255), rtol=1e-15, atol=0)
    assert ds.get_labels().tolist() == labels.tolist()
    assert ds.get_labels().dtype == np.int32
    assert ds.get_inputs("f32").dtype == np.float32
    ds10 = mg.Dataset.load_idx(ctx, str(ip), str(lp), num_classes=10)
    assert ds10.num_classes == 10
    np.testing.assert_array_equal(ds10.get_inputs(), images)
    unlabelled = mg.Dataset.load_idx(ctx, ip)
    assert unlabelled.num_classes == 0
    with pytest.raises(mg.OrderError):
        unlabelled.get_labels()


def test_idx_f64_one_dim(ctx, tmp_path):
    values = np.array([0.5, -1.25, 3.0, 1e-3])
    ip = write(tmp_path / "v", idx_bytes(values, 0x0E, ">f8"))
    ds = mg.Dataset.load_idx(ctx, ip)
    assert ds.shape == (1,) and len(ds) == 4
    assert ds.get_inputs().ravel().tolist() == values.tolist()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_npy(ctx, tmp_path, compress):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    y = np.array([2, 0, 1, 1, 2], dtype=np.int64)
    xp, yp = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(xp, x)
    np.save(yp, y)
    if compress:
        for p in (xp, yp):
            p.write_bytes(gzip.compress(p.read_bytes()))
    ds = mg.Dataset.load_npy(ctx, xp, yp)
    assert ds.shape == (2, 3) and ds.num_classes == 3
    np.testing.assert_array_equal(ds.get_inputs(), x.astype(np.float64))
    assert ds.get_labels().tolist() == y.tolist()
    fortran = tmp_path / "f.npy"
    np.save(fortran, np.asfortranarray(rng.standard_normal((4, 3))))
    with pytest.raises(mg.UnsupportedError):
        mg.Dataset.load_npy(ctx, fortran)


def test_csv(ctx, tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b"label,a,b\r\n1, 0.5,2\r\n0,-1.5 ,\t3e-1\r\n2,4,5\r\n")
    ds = mg.Dataset.load_csv(ctx, p, label_column=0, has_header=True)
    assert ds.shape == (2,) and len(ds) == 3 and ds.num_classes == 3
    assert ds.get_inputs().tolist() == [[0.5, 2.0], [-1.5, 0.3], [4.0, 5.0]]
    assert ds.get_labels().tolist() == [1, 0, 2]
    nolabel = mg.Dataset.load_csv(ctx, p, has_header=True)
    assert nolabel.shape == (3,)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,abc\n")
    with pytest.raises(mg.FormatError) as e:
        mg.Dataset.load_csv(ctx, bad)
    assert "2" in e.value.message and e.value.function == "mgrad_dataset_load_csv"
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3\n")
    with pytest.raises(mg.FormatError):
        mg.Dataset.load_csv(ctx, ragged)
    with pytest.raises(mg.InvalidError):
        mg.Dataset.load_csv(ctx, p, label_column=7, has_header=True)


def test_bad_files(ctx, tmp_path):
    with pytest.raises(mg.FileIOError) as e:
        mg.Dataset.load_idx(ctx, tmp_path / "missing")
    assert "missing" in e.value.message
    images = np.zeros((4, 2, 2), dtype=np.uint8)
    good = idx_bytes(images, 0x08, ">u1")
    with pytest.raises(mg.FormatError):
        mg.Dataset.load_idx(ctx, write(tmp_path / "trunc", good[:-3]))
    with pytest.raises(mg.FormatError):
        mg.Dataset.load_idx(ctx, write(tmp_path / "magic", b"\x01\x02" + good[2:]))
    with pytest.raises(mg.FormatError):
        mg.Dataset.load_idx(ctx, write(tmp_path / "gz", gzip.compress(good)[:-6]))
    lab = write(tmp_path / "lab3", idx_bytes(np.array([0, 1, 2], dtype=np.uint8), 0x08, ">u1"))
    with pytest.raises(mg.FormatError):  # 4 images, 3 labels
        mg.Dataset.load_idx(ctx, write(tmp_path / "ok", good), lab)
    with pytest.raises(mg.InvalidError):
        mg.Dataset.load_idx(ctx, tmp_path / "ok", scale=0.0)
    with pytest.raises(mg.FormatError):
        mg.Dataset.load_npy(ctx, write(tmp_path / "x.npy", b"not numpy at all"))
    with pytest.raises(mg.DtypeError):
        mg.Dataset.load_idx(ctx, 42)
    with pytest.raises(TypeError):
        mg.Dataset.load_csv("ctx", tmp_path / "ok")
    with pytest.raises(mg.InvalidError):
        mg.Dataset.load_fashion_mnist(ctx, "validation", dir=str(tmp_path))
    with pytest.raises(mg.FileIOError):
        mg.Dataset.load_fashion_mnist(ctx, "test", dir=str(tmp_path))


def made(ctx, n=10, shape=(2, 3), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + shape) * 3 + 1
    y = (np.arange(n) % 3).astype(np.int32)
    return mg.Dataset(ctx, x, labels=y), x, y


def test_normalize_and_scale(ctx):
    ds, x, _ = made(ctx)
    assert ds.normalize() is ds
    z = ds.get_inputs()
    np.testing.assert_allclose(z, (x - x.mean()) / x.std(), atol=1e-12)
    ds2, x2, _ = made(ctx, seed=1)
    ref, xr, _ = made(ctx, seed=2)
    ds2.normalize(ref, "per_feature")
    np.testing.assert_allclose(ds2.get_inputs(), (x2 - xr.mean(0)) / xr.std(0), atol=1e-12)
    ds3, x3, _ = made(ctx, seed=3)
    ds3.normalize(mode=mg.Normalize.PER_CHANNEL)
    mu = x3.mean(axis=(0, 2), keepdims=True)
    sd = x3.std(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(ds3.get_inputs(), (x3 - mu) / sd, atol=1e-12)
    assert ds3.scale(2.0, offset=1.0) is ds3
    np.testing.assert_allclose(ds3.get_inputs(), 2 * (x3 - mu) / sd + 1, atol=1e-12)
    with pytest.raises(mg.InvalidError):
        ds.normalize(mode="per_pixel")
    with pytest.raises(mg.InvalidError):
        ds.scale(float("inf"))
    other, _, _ = made(ctx, shape=(6,))
    with pytest.raises(mg.ShapeError):
        ds.normalize(other)
    with pytest.raises(TypeError):
        ds.normalize("train")
    # in use by a run: read-only
    m = mg.Model(ctx, (2, 3)).dense(3)
    run = mg.Run(m, ds, validation=ds, steps=1, batch_size=2)
    with pytest.raises(mg.OrderError):
        ds.scale(2.0)
    run.close()


def test_split_and_subset(ctx):
    ds, x, y = made(ctx, n=11)
    a, b = ds.split(4, seed=9)
    assert (len(a), len(b)) == (4, 7) and a.shape == b.shape == (2, 3)
    xa, xb = a.get_inputs(), b.get_inputs()
    rows_a = [int(np.flatnonzero((x == r).all(axis=(1, 2)))[0]) for r in xa]
    rows_b = [int(np.flatnonzero((x == r).all(axis=(1, 2)))[0]) for r in xb]
    assert sorted(rows_a + rows_b) == list(range(11))
    assert rows_a == sorted(rows_a) and rows_b == sorted(rows_b)  # original order
    assert a.get_labels().tolist() == y[rows_a].tolist()          # labels travel
    a2, _ = ds.split(4, seed=9)
    np.testing.assert_array_equal(a2.get_inputs(), xa)
    a3, _ = ds.split(4, seed=10)
    assert not np.array_equal(a3.get_inputs(), xa)
    sub = ds.subset([3, 3, 0, 10])
    np.testing.assert_array_equal(sub.get_inputs(), x[[3, 3, 0, 10]])
    assert sub.get_labels().tolist() == y[[3, 3, 0, 10]].tolist()
    with pytest.raises(mg.InvalidError):
        ds.split(11)
    with pytest.raises(mg.InvalidError, match="11"):
        ds.subset([0, 11])
    with pytest.raises(mg.ShapeError):
        ds.subset([[0, 1]])
    with pytest.raises(mg.DtypeError):
        ds.subset([0.5])
    ds.close()  # the parts are datasets of their own
    assert len(sub) == 4 and len(a) == 4
    with pytest.raises(mg.ClosedError):
        ds.split(2)


def test_loaded_dataset_trains(ctx, tmp_path):
    """A loaded, split and normalised set is an ordinary Dataset for runs."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 4))
    y = (x[:, 0] > 0).astype(np.int64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    full = mg.Dataset.load_npy(ctx, tmp_path / "x.npy", tmp_path / "y.npy", num_classes=2)
    tr, va = full.split(14, seed=1)
    va.normalize(tr)
    tr.normalize()
    with mg.Run(mg.Model(ctx, 4).dense(2), tr, validation=va, steps=5, batch_size=7) as run:
        w = run.add_meta("data_weights")
        assert np.isfinite(run.train())
        run.reverse()
        assert w.grad.shape == (14,)


def test_compact(tmp_path):
    """compact(): one byte per value when there are at most 256 distinct
    values, the same bits back, the same run; more values: left dense."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 40, size=(30, 5)) * 0.1 - 2.0
    x[0, 0] = -0.0  # not the same value as 0.0
    y = (np.arange(30) % 3).astype(np.int32)
    results = []
    for compact in (False, True):
        with mg.Context(dtype="f64", seed=3) as ctx:
            ds = mg.Dataset(ctx, x, labels=y)
            val = mg.Dataset(ctx, x[:10], labels=y[:10])
            if compact:
                before = ctx.memory()[0]
                k = len(np.unique(x.view(np.int64)))
                assert ds.compact() == 30 * 5 + k * 8
                assert before - ctx.memory()[0] == 30 * 5 * 8 - (30 * 5 + k * 8)
                assert ds.compact() == 30 * 5 + k * 8  # already compact
                val.compact()
            assert ds.get_inputs().view(np.int64).tolist() == x.view(np.int64).tolist()
            with mg.Run(mg.Model(ctx, 5).dense(3), ds, validation=val, steps=4,
                        batch_size=6) as run:
                w = run.add_meta("data_weights")
                with pytest.raises(mg.OrderError):
                    ds.compact()
                phi = run.train()
                run.reverse()
                results.append((phi, w.grad.tolist()))
    assert results[0] == results[1]
    with mg.Context(dtype="f32") as ctx:
        many = mg.Dataset(ctx, np.arange(300.0).reshape(100, 3))
        assert many.compact() == 300 * 4  # 300 distinct values: dense
        images = rng.integers(0, 256, size=(7, 3, 4), dtype=np.uint8)
        ip = write(tmp_path / "img", idx_bytes(images, 0x08, ">u1"))
        loaded = mg.Dataset.load_idx(ctx, ip, scale=1 / 255)
        assert loaded.compact() == 7 * 12 + 256 * 4  # byte images load compact
        want = (images * (1 / 255)).astype(np.float32)  # as the loader scales
        assert loaded.get_inputs("f32").view(np.int32).tolist() == want.view(np.int32).tolist()


@pytest.mark.skipif(not os.path.isdir(FMNIST), reason="Fashion-MNIST not installed "
                    "(Debian package dataset-fashion-mnist)")
def test_fashion_mnist_real_files():
    with mg.Context(dtype="f32") as ctx:
        test = mg.Dataset.load_fashion_mnist(ctx, "test")
        assert (len(test), test.shape, test.num_classes) == (10000, (1, 28, 28), 10)
        with gzip.open(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")) as f:
            raw = f.read()
        assert struct.unpack(">ii", raw[:8]) == (2049, 10000)
        labels = test.get_labels()
        assert labels.tolist() == list(raw[8:])
        with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
            head = f.read(16 + 3 * 784)
        assert struct.unpack(">iiii", head[:16]) == (2051, 10000, 28, 28)
        pixels = np.frombuffer(head[16:], dtype=np.uint8).reshape(3, 1, 28, 28)
        x = test.get_inputs("f32")
        assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
        np.testing.assert_allclose(x[:3], pixels / 255.0, rtol=1e-6, atol=0)
        assert 0.0 <= x.min() and x.max() <= 1.0
        train = mg.Dataset.load_fashion_mnist(ctx, "train", dir=FMNIST)
        assert len(train) == 60000 and train.num_classes == 10
        counts = np.bincount(train.get_labels(), minlength=10)
        assert counts.tolist() == [6000] * 10
        # a small CNN trains on a subset
        sub = train.subset(np.arange(64))
        val = test.subset(np.arange(32))
        m = (mg.Model(ctx, (1, 28, 28)).conv2d(4, 5, stride=2).activation("relu")
             .max_pool(2).flatten().dense(10))
        with mg.Run(m, sub, validation=val, steps=4, batch_size=16, lr=0.05) as run:
            assert np.isfinite(run.train())

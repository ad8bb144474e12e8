"""Token datasets and text corpora through Python (metagrad/dataset.h,
metagrad/data.h): ids round-trip exactly, invalid ids raise naming example
and position, subsets keep the vocabulary; text files (plain and gzip) cut
into documents and examples checked against cuts made here by hand."""

import gzip
import os

import pytest

import metagrad as mg
from metagrad._api import TextCorpus

np = pytest.importorskip("numpy")


@pytest.fixture(params=["f32", "f64"])
def ctx(request):
    with mg.Context(dtype=request.param, seed=1) as c:
        yield c


def test_tokens_round_trip(ctx):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 256, size=(6, 9)).astype(np.int32)
    ds = mg.Dataset.tokens(ctx, ids, 256)
    assert ds.vocab == 256 and ds.size == 6 and ds.shape == (9,)
    assert np.array_equal(ds.get_tokens(), ids)
    assert np.array_equal(ds.get_inputs(), ids.astype(np.float64))
    # one byte per token (+ the 256-entry palette)
    es = 4 if ctx.dtype == "f32" else 8
    assert ds.compact() == ids.size + 256 * es
    ds.set_weights(np.linspace(0, 1, 6))
    sub = ds.subset([5, 0, 0])
    assert sub.vocab == 256
    assert np.array_equal(sub.get_tokens(), ids[[5, 0, 0]])
    with pytest.raises(mg.InvalidError, match="token ids"):
        ds.scale(2.0)
    # lists work too; a larger vocabulary is stored densely, still exactly
    big = [[0, 70000, 3], [99999, 1, 2]]
    ds2 = mg.Dataset.tokens(ctx, big, 100000)
    assert ds2.get_tokens().tolist() == big
    plain = mg.Dataset(ctx, np.zeros((2, 3)))
    assert plain.vocab == 0
    with pytest.raises(mg.OrderError):
        plain.get_tokens()


def test_tokens_invalid(ctx):
    ids = np.zeros((3, 4), dtype=np.int64)
    ids[2, 1] = 256
    before = ids.copy()
    with pytest.raises(mg.InvalidError, match="token 256 at example 2, position 1"):
        mg.Dataset.tokens(ctx, ids, 256)
    assert np.array_equal(ids, before)
    with pytest.raises(mg.InvalidError, match="length = 1"):
        mg.Dataset.tokens(ctx, [[1], [2]], 256)
    with pytest.raises(mg.ShapeError):
        mg.Dataset.tokens(ctx, [1, 2, 3], 256)


FORTUNES = b"first fortune, quite long\n%\nsecond\n%\nthird one here\n%\n"


def make_corpus(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"plain text file of some length\n")
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(b"gzip text, also long enough\n"))
    (tmp_path / "f").write_bytes(FORTUNES)
    (tmp_path / "f.dat").write_bytes(b"\0\0\0\2binary")
    docs = [(b"plain text file of some length\n", 0), (b"gzip text, also long enough\n", 0),
            (b"first fortune, quite long\n", 1), (b"second\n", 1), (b"third one here\n", 1)]
    return docs


def cut(docs, sel, length, stride):
    rows, ids = [], []
    for d in sel:
        text = docs[d][0]
        s = 0
        while s + length <= len(text):
            rows.append(list(text[s:s + length]))
            ids.append(d)
            s += stride
    return rows, ids


def test_corpus(ctx, tmp_path):
    docs = make_corpus(tmp_path)
    with TextCorpus(ctx) as c:
        assert c.add(tmp_path / "a.txt") == 1
        assert c.add(str(tmp_path / "b.txt.gz")) == 1
        assert c.add(str(tmp_path / "f*"), split="percent", domain=1, exclude="*.dat") == 3
        assert c.add(tmp_path / "a.txt") == 0  # already in
        assert len(c) == 5
        assert c.bytes == sum(len(t) for t, _ in docs)
        for i, (text, dom) in enumerate(docs):
            d = c.document(i)
            assert d["text"] == text and d["domain"] == dom
        assert c.document(3)["part"] == 1 and c.document(3)["path"].endswith("/f")
        assert list(c.domains()) == [d for _, d in docs]
        for length, stride in ((5, 0), (9, 3), (17, 20)):
            step = stride or length - 1
            want, want_ids = cut(docs, range(5), length, step)
            assert c.count_examples(length, stride) == len(want)
            ds, doc = c.examples(length, stride)
            assert ds.vocab == 256
            assert ds.get_tokens().tolist() == want
            assert doc.tolist() == want_ids
        sel = [4, 0, 0]
        ds, doc = c.examples(6, 2, documents=sel)
        want, want_ids = cut(docs, sel, 6, 2)
        assert ds.get_tokens().tolist() == want and doc.tolist() == want_ids
        with pytest.raises(mg.InvalidError, match="no document holds length = 100 bytes"):
            c.examples(100)
        assert c.count_examples(100) == 0
        with pytest.raises(mg.InvalidError, match="outside"):
            c.examples(5, documents=[7])
        with pytest.raises(mg.FormatError, match="NUL byte"):
            c.add(tmp_path / "f.dat")
        with pytest.raises(mg.FileIOError, match="missing"):
            c.add(tmp_path / "missing")
        with pytest.raises(mg.FileIOError, match="matches no regular file"):
            c.add(str(tmp_path / "nothing*"))
        with pytest.raises(mg.InvalidError, match="split"):
            c.add(tmp_path / "a.txt", split="lines")
        assert len(c) == 5


def test_load_text(ctx, tmp_path):
    docs = make_corpus(tmp_path)
    ds, doc = mg.Dataset.load_text(ctx, [tmp_path / "a.txt", tmp_path / "b.txt.gz"], 8)
    want, want_ids = cut(docs, [0, 1], 8, 7)
    assert ds.get_tokens().tolist() == want and doc.tolist() == want_ids
    with TextCorpus(ctx) as empty:
        with pytest.raises(mg.InvalidError, match="holds no document"):
            empty.examples(5)


@pytest.mark.skipif(not os.path.exists("/usr/share/games/fortunes/computers"),
                    reason="fortunes not installed")
def test_fortunes(tmp_path):
    with mg.Context(dtype="f32") as ctx, TextCorpus(ctx) as c:
        n = c.add("/usr/share/games/fortunes/[a-z]*", split="percent", exclude="*.dat")
        assert n > 1000
        ds, doc = c.examples(33)
        toks = ds.get_tokens()
        for i in (0, len(doc) // 2, len(doc) - 1):
            text = c.document(int(doc[i]))["text"]
            assert bytes(toks[i].astype(np.uint8)) in text

#!/usr/bin/env python3
"""Write the data loaders' test corpus (standard library only).

    tests/fuzz/seeds/{idx,npy,csv}/   small valid files: fuzzing seeds and the
                                      partners of corrupt label files
    tests/data/corrupt/               files every loader must reject cleanly

Corrupt file names say how tests/test_data.c and tests/fuzz/replay.c load
them:
    idx-img-*   mgrad_dataset_load_idx(file, NULL, 0, 1.0)
    idx-lab-*   mgrad_dataset_load_idx(seeds/idx/images-3x2x2.idx, file, 0, 1.0)
    npy-in-*    mgrad_dataset_load_npy(file, NULL, 0)
    npy-lab-*   mgrad_dataset_load_npy(seeds/npy/inputs-f4-3x2.npy, file, 0)
    csv-*       mgrad_dataset_load_csv(file, 0, 1, 0)   (label column 0, header)

The output is committed; rerun after changing this script:
    python3 tests/data/make_corpus.py
"""
import gzip
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
CORRUPT = os.path.join(ROOT, "data", "corrupt")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def gz(data):
    # mtime=0: reproducible bytes
    return gzip.compress(data, mtime=0)


def idx(type_byte, dims, payload):
    return bytes([0, 0, type_byte, len(dims)]) + b"".join(
        struct.pack(">I", d) for d in dims) + payload


def npy(descr, shape, payload, version=1, fortran=False, header=None):
    if header is None:
        shape_s = "(" + "".join("%d, " % d for d in shape)
        shape_s = shape_s[:-2] + ",)" if len(shape) == 1 else shape_s[:-2] + ")"
        if not shape:
            shape_s = "()"
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
            descr, "True" if fortran else "False", shape_s)
    h = header.encode("utf-8")
    pre = 10 if version == 1 else 12
    pad = (64 - (pre + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    ln = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + ln + h + payload


def main():
    for d in (CORRUPT, os.path.join(SEEDS, "idx"), os.path.join(SEEDS, "npy"),
              os.path.join(SEEDS, "csv")):
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):
            os.remove(os.path.join(d, name))

    # ---- valid seeds -------------------------------------------------------
    images = idx(0x08, [3, 2, 2], bytes(range(0, 240, 20)))
    labels = idx(0x08, [3], bytes([0, 1, 2]))
    s = os.path.join(SEEDS, "idx")
    write(os.path.join(s, "images-3x2x2.idx"), images)
    write(os.path.join(s, "images-3x2x2.idx.gz"), gz(images))
    write(os.path.join(s, "labels-3.idx"), labels)
    write(os.path.join(s, "labels-3.idx.gz"), gz(labels))
    write(os.path.join(s, "images-f32-3x2.idx"),
          idx(0x0D, [3, 2], struct.pack(">6f", 0.5, -1, 2, 3.25, 0, 1e3)))
    write(os.path.join(s, "images-i16-3.idx"), idx(0x0B, [3], struct.pack(">3h", -7, 0, 300)))
    write(os.path.join(s, "labels-i32-3.idx"), idx(0x0C, [3], struct.pack(">3i", 2, 0, 1)))

    inputs = npy("<f4", [3, 2], struct.pack("<6f", 1, 2, 3, 4, 5, 6))
    s = os.path.join(SEEDS, "npy")
    write(os.path.join(s, "inputs-f4-3x2.npy"), inputs)
    write(os.path.join(s, "inputs-f4-3x2.npy.gz"), gz(inputs))
    write(os.path.join(s, "inputs-f8-3-v2.npy"),
          npy("<f8", [3], struct.pack("<3d", 0.25, -2, 8), version=2))
    write(os.path.join(s, "inputs-u1-3x2x2-v3.npy"),
          npy("|u1", [3, 2, 2], bytes(range(12)), version=3))
    write(os.path.join(s, "inputs-i8-3x1.npy"), npy("<i8", [3, 1], struct.pack("<3q", -1, 0, 5)))
    write(os.path.join(s, "labels-i8-3.npy"), npy("<i8", [3], struct.pack("<3q", 1, 0, 2)))
    write(os.path.join(s, "labels-u1-3.npy"), npy("|u1", [3], bytes([2, 2, 0])))

    s = os.path.join(SEEDS, "csv")
    write(os.path.join(s, "labelled.csv"), b"y,a,b\n1,0.5,2\n0,-1e3,3.25\n2, 7 ,\t8\n")
    write(os.path.join(s, "crlf.csv"), b"y,a\r\n0,1\r\n1,2\r\n\r\n")
    write(os.path.join(s, "labelled.csv.gz"), gz(b"y,a,b\n1,0.5,2\n0,-1e3,3.25\n"))

    # ---- corrupt files -----------------------------------------------------
    c = {}
    c["idx-img-empty.idx"] = b""
    c["idx-img-magic.idx"] = b"\x01\x00" + images[2:]
    c["idx-img-type.idx"] = images[:2] + b"\x07" + images[3:]
    c["idx-img-rank0.idx"] = idx(0x08, [], b"")
    c["idx-img-rank5.idx"] = idx(0x08, [1, 1, 1, 1, 1], b"\x00")
    c["idx-img-dim0.idx"] = idx(0x08, [3, 0, 2], b"")
    c["idx-img-huge-dims.idx"] = idx(0x08, [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b"\x00" * 8)
    c["idx-img-overflow.idx"] = idx(0x0E, [0xFFFFFFFF] * 4, b"")
    c["idx-img-dims-exceed-file.idx"] = idx(0x08, [1000, 28, 28], b"\x00" * 100)
    c["idx-img-truncated-header.idx"] = images[:9]
    c["idx-img-truncated-payload.idx"] = images[:-1]
    c["idx-img-trailing.idx"] = images + b"\x00"
    c["idx-img-nan.idx"] = idx(0x0D, [2, 1], struct.pack(">2f", 1.0, float("nan")))
    c["idx-img-f64-overflow-f32.idx"] = idx(0x0E, [1, 1], struct.pack(">d", 1e300))
    c["idx-img-gz-truncated.idx.gz"] = gz(images)[:-6]
    c["idx-img-gz-trailer-only.idx.gz"] = gz(images)[:-8]
    bad_crc = bytearray(gz(images))
    bad_crc[-8] ^= 0xFF
    c["idx-img-gz-bad-crc.idx.gz"] = bytes(bad_crc)
    bad_deflate = bytearray(gz(images))
    bad_deflate[12] ^= 0x55
    c["idx-img-gz-bad-deflate.idx.gz"] = bytes(bad_deflate)
    c["idx-img-gz-header-only.idx.gz"] = gz(images)[:10]
    c["idx-img-gz-bomb-claim.idx.gz"] = gz(idx(0x08, [0x7FFFFFFF, 255, 255], b""))
    c["idx-lab-count-mismatch.idx"] = idx(0x08, [4], bytes([0, 1, 2, 0]))
    c["idx-lab-2d.idx"] = idx(0x08, [3, 1], bytes([0, 1, 2]))
    c["idx-lab-float.idx"] = idx(0x0D, [3], struct.pack(">3f", 0, 1, 2))
    c["idx-lab-negative.idx"] = idx(0x09, [3], struct.pack(">3b", 0, -1, 1))
    c["idx-lab-int32-max.idx"] = idx(0x0C, [3], struct.pack(">3i", 0, 1, 0x7FFFFFFF))
    c["idx-lab-all-zero.idx"] = idx(0x08, [3], bytes([0, 0, 0]))
    c["idx-lab-truncated.idx"] = labels[:-1]
    c["idx-lab-trailing.idx"] = labels + b"\x01"

    good = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    c["npy-in-empty.npy"] = b""
    c["npy-in-magic.npy"] = b"\x93NUMPX" + inputs[6:]
    c["npy-in-version4.npy"] = inputs[:6] + b"\x04\x00" + inputs[8:]
    c["npy-in-minor1.npy"] = inputs[:7] + b"\x01" + inputs[8:]
    c["npy-in-header-len-beyond-file.npy"] = inputs[:8] + b"\xff\x7f" + inputs[10:]
    c["npy-in-header-len-huge-v2.npy"] = b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}"
    c["npy-in-header-len-zero.npy"] = inputs[:8] + b"\x00\x00" + inputs[10:]
    no_newline = bytearray(inputs)
    no_newline[len(inputs) - len(good) - 1] = ord(" ")
    c["npy-in-no-newline.npy"] = bytes(no_newline)
    c["npy-in-fortran.npy"] = npy("<f4", [3, 2], good, fortran=True)
    c["npy-in-big-endian.npy"] = npy(">f4", [3, 2], struct.pack(">6f", 1, 2, 3, 4, 5, 6))
    c["npy-in-object.npy"] = npy("|O", [3, 2], good)
    c["npy-in-complex.npy"] = npy("<c8", [3], good)
    c["npy-in-structured.npy"] = npy("", [], good, header="{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }")
    c["npy-in-unknown-key.npy"] = npy("", [], good, header="{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), 'x': 1, }")
    c["npy-in-duplicate-key.npy"] = npy("", [], good, header="{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }")
    c["npy-in-missing-shape.npy"] = npy("", [], good, header="{'descr': '<f4', 'fortran_order': False, }")
    c["npy-in-unterminated-dict.npy"] = npy("", [], good, header="{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), ")
    c["npy-in-unterminated-string.npy"] = npy("", [], good, header="{'descr': '<f4, 'fortran_order': False, 'shape': (3, 2), }")
    c["npy-in-shape-negative.npy"] = npy("", [], good, header="{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 2), }")
    c["npy-in-shape-overflow.npy"] = npy("", [], good, header="{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 2), }")
    c["npy-in-shape-product-overflow.npy"] = npy("<f8", [2**40, 2**40, 2**40], b"")
    c["npy-in-shape-scalar.npy"] = npy("<f4", [], good[:4])
    c["npy-in-shape-5d.npy"] = npy("<f4", [1, 1, 1, 1, 6], good)
    c["npy-in-shape-not-tuple.npy"] = npy("", [], good, header="{'descr': '<f4', 'fortran_order': False, 'shape': [3, 2], }")
    c["npy-in-shape-no-comma.npy"] = npy("", [], good, header="{'descr': '<f4', 'fortran_order': False, 'shape': (6), }")
    c["npy-in-fortran-garbage.npy"] = npy("", [], good, header="{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3, 2), }")
    c["npy-in-zero-rows.npy"] = npy("<f4", [0, 2], b"")
    c["npy-in-zero-cols.npy"] = npy("<f4", [3, 0], b"")
    c["npy-in-truncated-header.npy"] = inputs[:40]
    c["npy-in-truncated-payload.npy"] = inputs[:-3]
    c["npy-in-trailing.npy"] = inputs + b"\x00\x00\x00\x00"
    c["npy-in-dims-exceed-file.npy"] = npy("<f4", [1000000, 2], good)
    c["npy-in-nan.npy"] = npy("<f4", [3, 2], struct.pack("<6f", 1, 2, float("nan"), 4, 5, 6))
    c["npy-in-control-byte.npy"] = npy("", [], good, header="{'descr': '<f4',\x01'fortran_order': False, 'shape': (3, 2), }")
    c["npy-in-gz-truncated.npy.gz"] = gz(inputs)[:-5]
    c["npy-lab-float.npy"] = npy("<f4", [3], struct.pack("<3f", 0, 1, 2))
    c["npy-lab-2d.npy"] = npy("<i8", [3, 1], struct.pack("<3q", 0, 1, 2))
    c["npy-lab-count-mismatch.npy"] = npy("<i8", [2], struct.pack("<2q", 0, 1))
    c["npy-lab-negative.npy"] = npy("<i8", [3], struct.pack("<3q", 0, -1, 1))
    c["npy-lab-huge.npy"] = npy("<i8", [3], struct.pack("<3q", 0, 1, 2**40))
    c["npy-lab-truncated.npy"] = npy("<i8", [3], struct.pack("<3q", 0, 1, 2))[:-1]
    c["npy-lab-all-zero.npy"] = npy("|u1", [3], bytes([0, 0, 0]))

    c["csv-empty.csv"] = b""
    c["csv-header-only.csv"] = b"y,a,b\n"
    c["csv-ragged.csv"] = b"y,a,b\n1,2,3\n0,4\n"
    c["csv-ragged-long.csv"] = b"y,a,b\n1,2,3\n0,4,5,6\n"
    c["csv-not-a-number.csv"] = b"y,a,b\n1,2,3\n0,abc,5\n"
    c["csv-number-then-text.csv"] = b"y,a,b\n1,2,3x\n"
    c["csv-empty-field.csv"] = b"y,a,b\n1,,3\n"
    c["csv-empty-last-field.csv"] = b"y,a,b\n1,2,\n"
    c["csv-nan.csv"] = b"y,a,b\n1,nan,3\n"
    c["csv-inf.csv"] = b"y,a,b\n1,2,-inf\n"
    c["csv-overflow.csv"] = b"y,a,b\n1,2,1e999\n"
    c["csv-quoted.csv"] = b"y,a,b\n1,\"2\",3\n"
    c["csv-blank-line-middle.csv"] = b"y,a,b\n1,2,3\n\n0,4,5\n"
    c["csv-label-fraction.csv"] = b"y,a,b\n1.5,2,3\n"
    c["csv-label-negative.csv"] = b"y,a,b\n-1,2,3\n"
    c["csv-label-huge.csv"] = b"y,a,b\n1e12,2,3\n"
    c["csv-label-all-zero.csv"] = b"y,a,b\n0,2,3\n0,4,5\n"
    c["csv-label-only.csv"] = b"y\n1\n0\n"
    c["csv-nul-byte.csv"] = b"y,a,b\n1,2\x00,3\n"
    c["csv-stray-cr.csv"] = b"y,a,b\n1,\r2,3\n"
    c["csv-gz-truncated.csv.gz"] = gz(b"y,a,b\n1,2,3\n0,4,5\n" * 20)[:-7]
    for name, data in c.items():
        write(os.path.join(CORRUPT, name), data)
    print("wrote %d corrupt files" % len(c))


if __name__ == "__main__":
    main()

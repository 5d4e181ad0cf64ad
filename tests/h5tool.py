#!/usr/bin/python3
"""Test oracle helpers over HDF5 files (h5py/numpy), used by tests/*.sh.

  h5tool.py reldiff A.h5 B.h5          max over tensors of max|a-b| / max|a| (/model/*)
  h5tool.py damage IN.h5 OUT.h5 KIND   a pair store broken in one way (see KINDS)
  h5tool.py inflate IN.h5 OUT.h5 ROWS DIM   a copy whose /features is float32 [ROWS, DIM]
                                       allocated but never written (a sparse file of
                                       ROWS*DIM*4 bytes of features; the disk holds KB)
  h5tool.py json FILE KEY[.KEY...]     print one value of a JSON file (last line of JSONL)
  h5tool.py attr FILE OBJ NAME         print an attribute ("absent" when there is none)
  h5tool.py set-attr FILE OBJ NAME VALUE   set a string attribute
  h5tool.py datasets FILE GROUP        the dataset names of a group, sorted
"""
import json
import shutil
import sys

import h5py
import numpy as np


def tensors(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()].astype(np.float64)
        f["model"].visititems(visit)
    return out


def reldiff(a, b):
    ta, tb = tensors(a), tensors(b)
    if sorted(ta) != sorted(tb):
        print("tensors differ: %s vs %s" % (sorted(ta), sorted(tb)))
        return 1
    worst = 0.0
    for name in ta:
        scale = np.max(np.abs(ta[name]))
        d = np.max(np.abs(ta[name] - tb[name]))
        r = d / scale if scale > 0 else d
        worst = max(worst, r)
    print("%.3e" % worst)
    return 0


KINDS = {
    "chosen_eq_rejected": "pair 3 has chosen == rejected",
    "index_out_of_range": "pair 5 points past the last feature row",
    "nan_used_row": "a used feature row holds NaN",
    "nan_unused_row": "an unused feature row holds NaN (allowed)",
    "no_features": "/features removed",
    "no_chosen": "/pairs/chosen removed",
    "wrong_format": "btrm_format attribute is 'something-else'",
    "chosen_float": "/pairs/chosen stored as float64",
    "length_mismatch": "/pairs/rejected one shorter than /pairs/chosen",
}


def damage(src, dst, kind):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        ch = f["pairs/chosen"][()]
        rj = f["pairs/rejected"][()]
        if kind == "chosen_eq_rejected":
            rj[3] = ch[3]
            f["pairs/rejected"][...] = rj
        elif kind == "index_out_of_range":
            rj[5] = f["features"].shape[0]
            f["pairs/rejected"][...] = rj
        elif kind == "nan_used_row":
            feats = f["features"][()]
            feats[ch[7], 2] = np.nan
            f["features"][...] = feats
        elif kind == "nan_unused_row":
            feats = f["features"][()]
            used = set(ch.tolist()) | set(rj.tolist())
            unused = [i for i in range(feats.shape[0]) if i not in used]
            if not unused:
                # add a row no pair uses
                feats = np.vstack([feats, np.zeros((1, feats.shape[1]), feats.dtype)])
                unused = [feats.shape[0] - 1]
                attrs = dict(f["features"].attrs)
                del f["features"]
                f.create_dataset("features", data=feats)
                for k, v in attrs.items():
                    f["features"].attrs[k] = v
            feats = f["features"][()]
            feats[unused[0], 0] = np.nan
            f["features"][...] = feats
        elif kind == "no_features":
            del f["features"]
        elif kind == "no_chosen":
            del f["pairs/chosen"]
        elif kind == "wrong_format":
            f.attrs["btrm_format"] = "something-else"
        elif kind == "chosen_float":
            del f["pairs/chosen"]
            f.create_dataset("pairs/chosen", data=ch.astype(np.float64))
        elif kind == "length_mismatch":
            del f["pairs/rejected"]
            f.create_dataset("pairs/rejected", data=rj[:-1])
        else:
            raise SystemExit("unknown kind %s; known: %s" % (kind, ", ".join(KINDS)))
    return 0


def inflate(src, dst, rows, dim):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        attrs = dict(f["features"].attrs)
        del f["features"]
        # storage allocated but never written: the file's size covers it, the
        # disk holds none of it
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        space = h5py.h5s.create_simple((rows, dim))
        h5py.h5d.create(f.id, b"features", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl).close()
        for k, v in attrs.items():
            f["features"].attrs[k] = np.int64(dim) if k == "dim" else v
    return 0


def json_value(path, key):
    with open(path) as fh:
        lines = [l for l in fh if l.strip()]
    try:
        doc = json.loads("".join(lines))
    except json.JSONDecodeError:
        doc = json.loads(lines[-1])
    for part in key.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    print(doc if not isinstance(doc, (dict, list)) else json.dumps(doc))
    return 0


def attr(path, obj, name):
    with h5py.File(path, "r") as f:
        v = f[obj].attrs.get(name)
    if v is None:
        print("absent")
    elif isinstance(v, bytes):
        print(v.decode())
    else:
        print(v)
    return 0


def set_attr(path, obj, name, value):
    with h5py.File(path, "r+") as f:
        f[obj].attrs[name] = value
    return 0


def datasets(path, group):
    with h5py.File(path, "r") as f:
        print(" ".join(sorted(k for k in f[group] if isinstance(f[group][k], h5py.Dataset))))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "reldiff":
        return reldiff(argv[2], argv[3])
    if len(argv) == 5 and argv[1] == "damage":
        return damage(argv[2], argv[3], argv[4])
    if len(argv) == 6 and argv[1] == "inflate":
        return inflate(argv[2], argv[3], int(argv[4]), int(argv[5]))
    if len(argv) == 4 and argv[1] == "json":
        return json_value(argv[2], argv[3])
    if len(argv) == 5 and argv[1] == "attr":
        return attr(argv[2], argv[3], argv[4])
    if len(argv) == 6 and argv[1] == "set-attr":
        return set_attr(argv[2], argv[3], argv[4], argv[5])
    if len(argv) == 4 and argv[1] == "datasets":
        return datasets(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Shared code for the data-prep converters (Python 3 standard library only).

Every converter reads one public preference set from the shared data folder
(../shared/data/README.md) and writes "shape 2" JSONL, one pair per line:

    {"prompt": ..., "chosen": ..., "rejected": ..., "subset": ..., "id": ...}

This module holds what they all need: the command line (--data-dir, -o), the
readers that report bad input as FILE: line N: what was expected, the pair
check, and the atomic, deterministic JSONL writer.
"""
import argparse
import collections
import csv
import gzip
import json
import os
import sys
import tempfile

FIELDS = ("prompt", "chosen", "rejected", "subset", "id")


class InputError(Exception):
    """Malformed input: the message names the file, the place and what was expected."""

    def __init__(self, path, where, what):
        place = "%s: %s: " % (path, where) if where else "%s: " % path
        super().__init__(place + what)


def repo_top():
    """The top of the btrm source tree (this file lives in data-prep/)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_data_dir():
    """$BTRM_SHARED/data when BTRM_SHARED is set, else ../shared/data next to the tree."""
    shared = os.environ.get("BTRM_SHARED")
    if shared:
        return os.path.join(shared, "data")
    return os.path.join(os.path.dirname(repo_top()), "shared", "data")


def make_id(*parts):
    """A pair id: the parts joined by '/', e.g. make_id('gsm8k', 12, 'a-vs-b')."""
    out = []
    for p in parts:
        s = str(p)
        if not s or any(c in s for c in "\n\r\t\0"):
            raise ValueError("id part %r is empty or holds a control character" % (p,))
        out.append(s)
    return "/".join(out)


def pair(prompt, chosen, rejected, subset, pair_id):
    """One shape-2 record (key order fixed so the output is byte-stable)."""
    return collections.OrderedDict(
        (("prompt", prompt), ("chosen", chosen), ("rejected", rejected),
         ("subset", subset), ("id", pair_id)))


def check_pair(rec, path, where, allow_blank=False):
    """Raises InputError unless rec is a well-formed pair: all five fields are
    strings without NUL (the C reader cannot hold one), subset and id not blank,
    chosen != rejected, and chosen and rejected not blank unless allow_blank
    (two sources hold real blank responses: see README.md)."""
    for k in FIELDS:
        v = rec[k]
        if not isinstance(v, str):
            raise InputError(path, where, "%s is %s, expected a string" % (k, type(v).__name__))
        if "\0" in v:
            raise InputError(path, where, "%s contains a NUL character" % k)
    for k in ("subset", "id") if allow_blank else ("chosen", "rejected", "subset", "id"):
        if not rec[k].strip():
            raise InputError(path, where, "%s is empty" % k)
    if rec["chosen"] == rec["rejected"]:
        raise InputError(path, where, "chosen and rejected are the same text")


def need_keys(obj, keys, path, where):
    """Raises InputError unless obj is a JSON object holding every key."""
    if not isinstance(obj, dict):
        raise InputError(path, where, "expected a JSON object, found %s" % type(obj).__name__)
    missing = [k for k in keys if k not in obj]
    if missing:
        raise InputError(path, where, "missing key(s) %s" % ", ".join(repr(k) for k in missing))


def need_str(obj, key, path, where):
    v = obj[key]
    if not isinstance(v, str):
        raise InputError(path, where, "%r is %s, expected a string" % (key, type(v).__name__))
    return v


def _open_text(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, "r", encoding="utf-8", newline="")


def need_file(path):
    if not os.path.isfile(path):
        raise InputError(path, "", "file not found (is --data-dir right? see ../shared/data/README.md)")


def read_json(path):
    """The whole JSON document of path."""
    need_file(path)
    try:
        with _open_text(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(path, "line %d column %d" % (e.lineno, e.colno), "invalid JSON: %s" % e.msg)
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise InputError(path, "", "cannot read: %s" % e)


def read_jsonl(path):
    """Yields (line number, object) for each non-blank line of a JSONL file
    (gzip-compressed when the name ends in .gz)."""
    need_file(path)
    lineno = 0
    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(path, "line %d" % lineno, "invalid JSON: %s" % e)
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise InputError(path, "after line %d" % lineno, "cannot read: %s" % e)


def read_csv(path, columns):
    """Yields (first line of the record, row dict) for each record of a CSV file
    with a header row holding at least `columns`. Records may span lines
    (quoted fields with embedded newlines), so the line given is where the
    record starts."""
    need_file(path)
    try:
        with _open_text(path) as f:
            reader = csv.reader(f, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                raise InputError(path, "line 1", "empty file, expected a header row")
            missing = [c for c in columns if c not in header]
            if missing:
                raise InputError(path, "line 1", "header lacks column(s) %s (found %s)"
                                 % (", ".join(missing), ", ".join(header)))
            start = reader.line_num + 1
            for row in reader:
                if row:
                    if len(row) != len(header):
                        raise InputError(path, "line %d" % start, "%d fields, expected %d as in the header"
                                         % (len(row), len(header)))
                    yield start, dict(zip(header, row))
                start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(path, "line %d" % reader.line_num, "malformed CSV: %s" % e)
    except (UnicodeDecodeError, OSError) as e:
        raise InputError(path, "", "cannot read: %s" % e)


def write_jsonl(path, pairs):
    """Writes the pairs to path atomically (a temporary file in the same folder,
    then os.replace), so a reader never sees half a file and a failed run leaves
    the old file in place. Ids must be unique."""
    seen = set()
    for rec in pairs:
        if rec["id"] in seen:
            raise ValueError("duplicate pair id %r (a converter bug)" % rec["id"])
        seen.add(rec["id"])
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for rec in pairs:
                f.write(json.dumps(rec, ensure_ascii=False, separators=(", ", ": ")))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(name, description, convert):
    """The command line every converter shares:

        data-prep/<name>.py [--data-dir DIR] -o OUT.jsonl

    convert(data_dir) returns the list of pairs in their final order. Prints the
    pair count (and the count per subset) on stdout. Exit codes: 0 ok,
    1 malformed or missing input, 2 usage error."""
    ap = argparse.ArgumentParser(prog="data-prep/%s.py" % name, description=description)
    ap.add_argument("--data-dir", default=None,
                    help="the shared data folder (default: $BTRM_SHARED/data, else "
                         "../shared/data next to the source tree: %s)" % default_data_dir())
    ap.add_argument("-o", "--output", required=True, metavar="OUT.jsonl",
                    help="the shape-2 JSONL file to write")
    args = ap.parse_args()
    data_dir = args.data_dir or default_data_dir()
    try:
        if not os.path.isdir(data_dir):
            raise InputError(data_dir, "", "data folder not found (give --data-dir or set BTRM_SHARED)")
        pairs = convert(data_dir)
        write_jsonl(args.output, pairs)
    except InputError as e:
        print("%s: error: %s" % (ap.prog, e), file=sys.stderr)
        return 1
    except OSError as e:
        print("%s: error: %s" % (ap.prog, e), file=sys.stderr)
        return 1
    per_subset = collections.Counter(rec["subset"] for rec in pairs)
    print("%s: %d pairs -> %s" % (name, len(pairs), args.output))
    for subset in sorted(per_subset):
        print("  %-28s %6d" % (subset, per_subset[subset]))
    return 0

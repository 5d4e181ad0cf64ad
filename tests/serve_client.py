#!/usr/bin/python3
"""tests/serve_client.py: a client of `btrm serve` with nothing but Python's
standard library (http.client, threads, sockets), for tests/serve.sh and
bench/serve-bench.sh.

  serve_client.py load PORT TEXTS.jsonl EXPECTED.jsonl [--clients C] [--requests R]
                  [--max-batch K] [--rtol T] [--rtol-max T] [--seed S]
      C threads, each with its own keep-alive connection, send R requests of
      1..K texts drawn at random from TEXTS.jsonl ({"text": ...} lines), as
      {"texts": ...} to /score or OpenRLHF's {"query": ...} to /get_reward,
      and check every answer against EXPECTED.jsonl (`btrm score` of the same
      file: {"reward": r} lines): the right number of rewards, each equal to
      its text's expected reward (exactly; or within T of it, relative to
      itself with --rtol, to the largest |reward| with --rtol-max), so a lost,
      duplicated or mixed-up response is caught. Prints one JSON line:
      requests, errors, mismatches, seconds, requests_per_s, texts_per_s,
      p50_ms, p99_ms. Exit 0 when every request succeeded and matched.
  serve_client.py burst PORT N BODY
      N requests with the JSON BODY at once (one connection each); prints the
      status codes, one per line, in completion order.
  serve_client.py trickle PORT SECONDS
      sends a POST whose body arrives one byte per 0.2 s for SECONDS; prints
      "closed" when the server closes the connection before the body is
      complete, "open" otherwise.
  serve_client.py idle PORT SECONDS
      opens a connection, sends nothing; prints "closed" when the server
      closes it within SECONDS, "open" otherwise.
"""
import http.client
import json
import random
import socket
import sys
import threading
import time


def post(conn, path, body):
    data = json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def load(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="serve_client.py load")
    ap.add_argument("port", type=int)
    ap.add_argument("texts")
    ap.add_argument("expected")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--rtol", type=float, default=0.0)
    ap.add_argument("--rtol-max", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    texts = [json.loads(l)["text"] for l in open(a.texts, encoding="utf-8") if l.strip()]
    want = [json.loads(l)["reward"] for l in open(a.expected) if l.strip()]
    assert len(texts) == len(want) and texts, "texts and expected rewards differ in length"
    scale = max(abs(w) for w in want)

    def tol_of(w):
        return max(a.rtol * abs(w), a.rtol_max * scale)
    lock = threading.Lock()
    stats = {"errors": 0, "mismatches": 0, "texts": 0, "worst": 0.0}
    latencies = []
    examples = []

    def client(k):
        rng = random.Random(a.seed * 1000 + k)
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
        mine = []
        for _ in range(a.requests):
            idx = [rng.randrange(len(texts)) for _ in range(rng.randint(1, a.max_batch))]
            batch = [texts[i] for i in idx]
            if rng.random() < 0.5:
                path, body = "/score", {"texts": batch}
            else:
                path, body = "/get_reward", {"query": batch, "prompts": batch, "labels": [0] * len(batch)}
            t0 = time.perf_counter()
            try:
                status, data = post(conn, path, body)
            except (OSError, http.client.HTTPException) as e:
                status, data = -1, str(e).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
            mine.append(time.perf_counter() - t0)
            bad = None
            if status != 200:
                bad = ("errors", "status %d: %s" % (status, data[:200]))
            else:
                got = json.loads(data).get("rewards")
                if not isinstance(got, list) or len(got) != len(idx):
                    bad = ("mismatches", "%d rewards for %d texts" % (len(got or []), len(idx)))
                else:
                    for g, i in zip(got, idx):
                        w = want[i]
                        with lock:
                            stats["worst"] = max(stats["worst"], abs(g - w) / scale)
                        if (g != w) if tol_of(w) == 0 else abs(g - w) > tol_of(w):
                            bad = ("mismatches", "text %d: got %r want %r" % (i, g, w))
                            break
            with lock:
                stats["texts"] += len(idx)
                if bad:
                    stats[bad[0]] += 1
                    if len(examples) < 5:
                        examples.append(bad[1])
        conn.close()
        with lock:
            latencies.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    latencies.sort()
    n = len(latencies)

    def pct(q):
        return 1000 * latencies[min(n - 1, int(q * n))] if n else 0.0
    out = {"clients": a.clients, "requests": n, "errors": stats["errors"],
           "mismatches": stats["mismatches"], "seconds": round(seconds, 3),
           "requests_per_s": round(n / seconds, 1), "texts_per_s": round(stats["texts"] / seconds, 1),
           "p50_ms": round(pct(0.50), 3), "p99_ms": round(pct(0.99), 3),
           "max_diff_over_max_reward": stats["worst"]}
    print(json.dumps(out))
    for e in examples:
        print("#", e)
    return 0 if stats["errors"] == 0 and stats["mismatches"] == 0 and n == a.clients * a.requests else 1


def burst(argv):
    port, n, body = int(argv[0]), int(argv[1]), argv[2].encode()
    results = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def one():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        try:
            conn.request("POST", "/score", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            status, data = resp.status, resp.read()
        except (OSError, http.client.HTTPException) as e:
            status, data = -1, str(e).encode()
        with lock:
            results.append((status, data))
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for status, data in results:
        print(status, data.decode(errors="replace"))
    return 0


def trickle(argv):
    port, seconds = int(argv[0]), float(argv[1])
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /score HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n")
    s.settimeout(0.2)
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            s.sendall(b" ")
            if s.recv(4096) == b"":
                print("closed")
                return 0
        except socket.timeout:
            continue
        except OSError:
            print("closed")
            return 0
    print("open")
    return 0


def idle(argv):
    port, seconds = int(argv[0]), float(argv[1])
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(seconds)
    try:
        print("closed" if s.recv(4096) == b"" else "open")
    except socket.timeout:
        print("open")
    except OSError:
        print("closed")
    return 0


if __name__ == "__main__":
    cmds = {"load": load, "burst": burst, "trickle": trickle, "idle": idle}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](sys.argv[2:]))

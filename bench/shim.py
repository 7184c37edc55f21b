"""Driver for bench/shim.sh: N sequential `ctr run --rm` of one image per runtime.

For each run it records the time from spawning `ctr run` to the first byte on its stdout
(start-to-first-output) and to its exit; prints a Markdown table with tasks/s and the ratio.
Usage: shim.py CTR_PREFIX_JSON N NAME|RUNTIME|IMAGE|ARGS... (ARGS space-separated; RUNTIME
`none`: the floor, `ctr containers create` + `delete` without a task; ratios are to the row
whose NAME starts with `runc`)
"""
import json, os, statistics, subprocess, sys, time

def floor(ctr, image, cid):
    """What ctr and containerd cost with no task at all: create the container (snapshot,
    metadata) and delete it, as `ctr run --rm` does around the task."""
    start = time.perf_counter()
    for cmd in (ctr + ["containers", "create", image, cid], ctr + ["containers", "delete", cid]):
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            sys.exit(f"floor: {cmd}: exit {p.returncode}, stderr {p.stderr!r}")
    t = time.perf_counter() - start
    return t, t

def one(ctr, runtime, image, args, cid):
    if runtime == "none":
        return floor(ctr, image, cid)
    cmd = ctr + ["run", "--rm", "--runtime", runtime]
    if runtime == "io.containerd.wharf.v1":
        cmd += ["--platform", "wasi/wasm"]
    cmd += [image, cid] + args
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    first = p.stdout.read(1)
    t_first = time.perf_counter() - start
    rest = p.stdout.read()
    err = p.stderr.read()
    code = p.wait()
    t_exit = time.perf_counter() - start
    out = first + rest
    if code != 0 or not out:
        sys.exit(f"{runtime}: exit {code}, stdout {out!r}, stderr {err!r}")
    return t_first, t_exit

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

def main():
    ctr = json.loads(sys.argv[1])
    n = int(sys.argv[2])
    rows = []
    for spec in sys.argv[3:]:
        name, runtime, image, args = spec.split("|", 3)
        one(ctr, runtime, image, args.split(), f"warm-{os.getpid()}")  # warm: snapshot, cache
        firsts, exits = [], []
        wall = time.perf_counter()
        for i in range(n):
            f, e = one(ctr, runtime, image, args.split(), f"b{i}-{os.getpid()}")
            firsts.append(f); exits.append(e)
        wall = time.perf_counter() - wall
        rows.append((name, n / wall, statistics.median(firsts), pct(firsts, 0.99), statistics.median(exits)))
    base = next(r[1] for r in rows if r[0].startswith("runc"))
    print(f"| runtime | tasks/s ({n} sequential `ctr run --rm`) | first output p50 | first output p99 | exit p50 | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, tps, f50, f99, e50 in rows:
        if name.startswith("floor"):
            print(f"| {name} | {tps:.1f} | - | - | {e50*1000:.1f} ms | {tps/base:.2f}x |")
            continue
        print(f"| {name} | {tps:.1f} | {f50*1000:.1f} ms | {f99*1000:.1f} ms | {e50*1000:.1f} ms | **{tps/base:.2f}x** |")

main()

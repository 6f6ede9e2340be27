"""Where a big S3 transfer's time goes: wall, client CPU and server CPU of each put and get, paired.

    .venv/bin/python benchmarks/s3_costs.py                     # 512 MiB, 6 rounds, both server settings
    .venv/bin/python benchmarks/s3_costs.py --mib 128 --rounds 4 --limits 30000

Starts one SeaweedFS per ``--limits`` value (``-master.volumeSizeLimitMB``) and, round after round, puts and
gets the same file through each contender on each server, the order reversed every other round (A B B A ...),
so a slow moment of the shared machine falls on every contender alike. Per transfer it records the wall time,
this process's CPU (``os.times``: user + system of every thread) and the weed process's CPU (``/proc/<pid>/stat``
utime + stime before and after). Prints medians and the load average. Contenders: mlstack's S3 backend (the
transfer engine: hashes the file for its address before the first part, verifies every byte it reads) and
boto3 ``upload_file``/``download_file`` with the benchmark's tuned TransferConfig (16 MiB parts, 8 threads;
hashes nothing); ``crt``: boto3's CRT transfer manager as benchmarks/artifacts.py builds it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(fn: Any, server_pid: int) -> tuple[float, float, float]:
    s0, c0, t0 = proc_cpu(server_pid), os.times(), time.perf_counter()
    fn()
    t1, c1, s1 = time.perf_counter(), os.times(), proc_cpu(server_pid)
    return t1 - t0, (c1.user - c0.user) + (c1.system - c0.system), s1 - s0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--limits", default="256,30000", help="volumeSizeLimitMB of each server to start")
    ap.add_argument("--contenders", default="mlstack,boto3tuned", help="of mlstack, boto3tuned, crt")
    ap.add_argument("--workdir", help="where the file and the servers' data go (default: the temp folder)")
    args = ap.parse_args(argv)

    from boto3.s3.transfer import TransferConfig

    from benchmarks.artifacts import _crt_get, _crt_manager, make_large, peer_client
    from mlstack.artifacts.s3 import S3Backend
    from tests.support.seaweedfs import start_seaweedfs

    work = Path(tempfile.mkdtemp(prefix="mlstack-s3costs-", dir=args.workdir))
    servers: dict[str, Any] = {}
    try:
        for limit in args.limits.split(","):
            servers[limit] = start_seaweedfs(work / f"sw-{limit}", volume_size_limit_mb=int(limit))
        any_sw = next(iter(servers.values()))
        os.environ.update({k: v for k, v in any_sw.env().items() if k != "AWS_ENDPOINT_URL_S3"})
        os.environ["MLSTACK_NO_PROGRESS"] = "1"
        big = make_large(work / "big.bin", args.mib)
        out = work / "big.out"
        tuned = TransferConfig(multipart_threshold=16 << 20, multipart_chunksize=16 << 20, max_concurrency=8)
        ctx: dict[str, Any] = {}
        for limit, sw in servers.items():
            bucket = sw.create_bucket()
            client = peer_client(sw)
            client.put_object(Bucket=bucket, Key="warmup", Body=os.urandom(1 << 20))
            ctx[limit] = (sw, bucket, client, _crt_manager(sw) if "crt" in args.contenders else None)

        def put(contender: str, limit: str, rnd: int) -> tuple[Any, Any]:
            sw, bucket, client, crt = ctx[limit]
            if contender == "mlstack":
                be = S3Backend(bucket, f"r{rnd}", sw.region, sw.endpoint_url)
                res = measure(lambda: be.put_file(big), sw.proc.pid)
                digest = be.put_file(big)[0]  # a HEAD: already there
                return res, lambda: be.get_to_file(digest, big.stat().st_size, out)
            key = f"{contender}-{rnd}"
            if contender == "crt":
                res = measure(lambda: crt.upload(str(big), bucket, key).result(), sw.proc.pid)
                return res, lambda: _crt_get(crt, bucket, key, out, big.stat().st_size)
            res = measure(lambda: client.upload_file(str(big), bucket, key, Config=tuned), sw.proc.pid)
            return res, lambda: client.download_file(bucket, key, str(out), Config=tuned)

        rows: dict[tuple[str, str, str], list[tuple[float, float, float]]] = {}
        pairs = [(c, lim) for lim in servers for c in args.contenders.split(",")]
        load = [os.getloadavg()]
        for rnd in range(args.rounds):
            order = pairs if rnd % 2 == 0 else pairs[::-1]
            for contender, limit in order:
                sw = ctx[limit][0]
                res, get = put(contender, limit, rnd)
                rows.setdefault((contender, limit, "put"), []).append(res)
                rows.setdefault((contender, limit, "get"), []).append(measure(get, sw.proc.pid))
                out.unlink()
            load.append(os.getloadavg())
            print(f"round {rnd + 1}/{args.rounds} done, load {load[-1][0]:.1f}", file=sys.stderr)
        print(
            f"{args.mib} MiB, {args.rounds} rounds, medians (wall s / client CPU-s / server CPU-s); min..max wall"
        )
        for (contender, limit, op), vals in sorted(rows.items(), key=lambda kv: (kv[0][2] != "put", kv[0])):
            w, c, s = (statistics.median(v[i] for v in vals) for i in range(3))
            ws = [v[0] for v in vals]
            print(
                f"{op:3} {contender:11} limit={limit:>5}  wall {w:5.2f}  client {c:5.2f}  server {s:5.2f}"
                f"   ({min(ws):.2f}..{max(ws):.2f}; {args.mib / w:.0f} MiB/s)"
            )
        print("load average (1 min) per round: " + " ".join(f"{x[0]:.1f}" for x in load))
    finally:
        for sw in servers.values():
            sw.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

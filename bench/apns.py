"""APNs pushes/s and client CPU per push: workers.apns vs aioapns, same loopback fake, same run.

The fake (tests/fakes/apns.py, count-only) runs in its own process so this process's CPU
is the client's alone. Both clients use one connection and up to 1,000 pushes in flight.

    .venv/bin/python -m bench.apns [--pushes 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import ROOT, cpu_seconds
from passes.devcerts import make_test_chain
from workers.apns import APNsClient

TOPIC = "pass.dev.punchpass"
IN_FLIGHT = 1000


def start_fake(certs: dict[str, Path]) -> tuple[subprocess.Popen, int]:
    """The fake APNs in a child process; returns it and its port."""
    command = [sys.executable, "-m", "tests.fakes.apns", "--count-only",
               "--cert", str(certs["server_cert"]), "--key", str(certs["server_key"]),
               "--ca", str(certs["root_ca"]), "--ca", str(certs["wwdr"])]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return process, int(process.stdout.readline())


def measure(run, fake_pid: int) -> dict[str, float]:
    """Wall time, this process's CPU and the fake's CPU for one call of run()."""
    wall, cpu, fake_cpu = time.perf_counter(), time.process_time(), cpu_seconds(fake_pid)
    run()
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "fake_cpu": cpu_seconds(fake_pid) - fake_cpu}


def bench_ours(port: int, certs, tokens: list[str], fake_pid: int) -> dict[str, float]:
    """workers.apns.APNsClient.push_many over all tokens (after a warm-up that connects)."""
    with APNsClient(cert_path=certs["pass_cert"], key_path=certs["pass_key"], ca_file=certs["root_ca"],
                    base_url=f"https://127.0.0.1:{port}", max_in_flight=IN_FLIGHT) as client:
        assert all(r.status == 200 for r in client.push_many(tokens[:200], TOPIC))
        results = []
        stats = measure(lambda: results.extend(client.push_many(tokens, TOPIC)), fake_pid)
    assert sum(r.status == 200 for r in results) == len(tokens), "not every push succeeded"
    return stats


def bench_aioapns(port: int, certs, tokens: list[str], fake_pid: int) -> dict[str, float]:
    """aioapns 4 with the pass certificate, pointed at the fake by its class attributes."""
    from aioapns import APNs, NotificationRequest
    from aioapns.connection import APNsProductionClientProtocol

    APNsProductionClientProtocol.APNS_SERVER = "127.0.0.1"  # aioapns has no base-URL setting
    APNsProductionClientProtocol.APNS_PORT = port
    context = ssl.create_default_context(cafile=str(certs["root_ca"]))  # aioapns adds the client cert
    context.set_alpn_protocols(["h2"])

    async def push_all(apns, batch: list[str]) -> list:
        gate = asyncio.Semaphore(IN_FLIGHT)  # aioapns's own pool waits by polling every 10 ms

        async def one(token: str):
            async with gate:
                return await apns.send_notification(NotificationRequest(device_token=token, message={}))
        return await asyncio.gather(*(one(token) for token in batch))

    async def run() -> tuple[dict[str, float], list]:
        apns = APNs(client_cert=combined_pem, topic=TOPIC, use_sandbox=False, ssl_context=context,
                    max_connections=1)
        await push_all(apns, tokens[:200])
        wall, cpu, fake_cpu = time.perf_counter(), time.process_time(), cpu_seconds(fake_pid)
        results = await push_all(apns, tokens)
        stats = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                 "fake_cpu": cpu_seconds(fake_pid) - fake_cpu}
        apns.pool.close()
        await asyncio.sleep(0.1)
        return stats, results

    with tempfile.TemporaryDirectory() as directory:
        combined_pem = os.path.join(directory, "pass-combined.pem")  # aioapns wants cert + key in one file
        Path(combined_pem).write_bytes(certs["pass_cert"].read_bytes() + certs["pass_key"].read_bytes())
        stats, results = asyncio.run(run())
    assert sum(r.is_successful for r in results) == len(tokens), "not every aioapns push succeeded"
    return stats


def report(name: str, pushes: int, stats: dict[str, float]) -> float:
    """Print one line; return pushes/s."""
    rate = pushes / stats["wall"]
    print(f"{name:<12} {rate:>8,.0f} pushes/s   client CPU {stats['cpu'] / pushes * 1e3:.3f} ms/push   "
          f"fake CPU {stats['fake_cpu'] / pushes * 1e3:.3f} ms/push   ({stats['wall']:.2f} s wall)")
    return rate


def main() -> int:
    """Both clients against the same fake in one run, so their figures compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20_000)
    args = parser.parse_args()
    tokens = [os.urandom(32).hex() for _ in range(args.pushes)]
    with tempfile.TemporaryDirectory() as directory:
        certs = make_test_chain(directory)
        fake, port = start_fake(certs)
        try:
            print(f"{args.pushes:,} pushes, one connection, {IN_FLIGHT} in flight, fake in pid {fake.pid}")
            ours = report("workers.apns", args.pushes, bench_ours(port, certs, tokens, fake.pid))
            theirs = report("aioapns", args.pushes, bench_aioapns(port, certs, tokens, fake.pid))
            print(f"ratio ours/aioapns: {ours / theirs:.2f}x pushes/s")
        finally:
            fake.terminate()
            print("fake:", fake.communicate(timeout=10)[0].strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())

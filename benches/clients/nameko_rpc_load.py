"""Load client for benches/rpc.sh: CONCURRENCY eventlet green threads, each
with its own nameko.standalone.rpc.ClusterRpcProxy (own reply queue),
together make CALLS calls of NAME.echo(i) and check every answer.

argv: NAME CALLS CONCURRENCY AMQP_URI. Prints one JSON line: calls,
seconds (calls only; the proxies are started before the clock starts),
calls_per_s.
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402

import itertools
import json
import sys
import time

from nameko.standalone.rpc import ClusterRpcProxy

NAME, CALLS, CONCURRENCY, AMQP_URI = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def main():
    config = {"AMQP_URI": AMQP_URI}
    proxies = [ClusterRpcProxy(config, timeout=30) for _ in range(CONCURRENCY)]
    started = [p.start() for p in proxies]
    counter = itertools.count()

    def caller(proxy):
        service = proxy[NAME]
        while True:
            i = next(counter)
            if i >= CALLS:
                return
            got = service.echo(i)
            if got != i:
                raise AssertionError("call %d: got %r" % (i, got))

    pool = eventlet.GreenPool(CONCURRENCY)
    t0 = time.perf_counter()
    threads = [pool.spawn(caller, p) for p in started]
    for t in threads:
        t.wait()
    secs = time.perf_counter() - t0
    for p in proxies:
        p.stop()
    print(json.dumps({"calls": CALLS, "concurrency": CONCURRENCY, "seconds": secs,
                      "calls_per_s": CALLS / secs}), flush=True)


if __name__ == "__main__":
    main()

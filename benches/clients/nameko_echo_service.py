"""A Python Nameko 2.14 service NAME with one method, echo(x) -> x, for
benches/rpc.sh. Run the way `nameko run` runs services: eventlet
monkey-patched, ServiceRunner, the default max_workers (10).

argv: NAME AMQP_URI [LIFETIME_S]. Prints {"ready": true} once running;
exits when stdin closes or after LIFETIME_S seconds (default 900).
"""
import eventlet
import eventlet.tpool

eventlet.monkey_patch()  # noqa: E402  (as `nameko run` does)

import json
import os
import sys

from nameko.rpc import rpc
from nameko.runners import ServiceRunner

NAME, AMQP_URI = sys.argv[1], sys.argv[2]
LIFETIME = float(sys.argv[3]) if len(sys.argv) > 3 else 900.0


class Echo:
    name = NAME

    @rpc
    def echo(self, x):
        return x


def main():
    runner = ServiceRunner({"AMQP_URI": AMQP_URI})  # max_workers: default 10
    runner.add_service(Echo)
    runner.start()
    print(json.dumps({"ready": True}), flush=True)

    def watchdog():
        eventlet.sleep(LIFETIME)
        os._exit(3)

    def stdin_closed():
        # tpool: a blocking read in a real thread.
        eventlet.tpool.execute(sys.stdin.read)
        os._exit(0)

    eventlet.spawn(watchdog)
    eventlet.spawn(stdin_closed)
    runner.wait()


if __name__ == "__main__":
    main()

"""A Python Nameko 2.14 service used as the peer of the Rust implementation.

argv[1]: JSON {"amqp_uri", "name", "rust_service", "event_type", "lifetime"}

Prints JSON lines on stdout: {"ready": true} once running, then one line per
event received from `rust_service`, with the worker context it saw.
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402  (as `nameko run` does)

import json
import os
import sys

from nameko.events import EventDispatcher, event_handler
from nameko.extensions import DependencyProvider
from nameko.runners import ServiceRunner

CFG = json.loads(sys.argv[1])


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


class WorkerCtx(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx


from nameko.rpc import rpc  # noqa: E402


class Service:
    name = CFG["name"]

    ctx = WorkerCtx()
    dispatch = EventDispatcher()

    @rpc
    def add(self, a, b):
        return a + b

    @rpc
    def fail(self, message):
        raise ValueError(message)

    @rpc
    def sleep(self, seconds):
        eventlet.sleep(seconds)
        return seconds

    @rpc
    def emit_event(self, event_type, payload):
        self.dispatch(event_type, payload)
        return self.ctx.call_id

    @event_handler(CFG["rust_service"], CFG["event_type"])
    def on_rust_event(self, payload):
        emit({
            "event": payload,
            "call_id": self.ctx.call_id,
            "parent_call_id_stack": list(self.ctx._parent_call_id_stack or []),
            "data": self.ctx.data,
        })


def main():
    runner = ServiceRunner({"AMQP_URI": CFG["amqp_uri"], "max_workers": 10})
    runner.add_service(Service)
    runner.start()
    emit({"ready": True})

    def watchdog():
        eventlet.sleep(float(CFG.get("lifetime", 120)))
        os._exit(3)

    eventlet.spawn(watchdog)
    runner.wait()


if __name__ == "__main__":
    main()

"""The Python side of the Quick Start test (Nameko 2.14).

argv[1]: JSON {"config", "name", "lifetime"}: "config" is the path of the
very YAML file the Rust Quick Start service was started with, read here as
`nameko run --config` reads it (its `${VAR}` substitution included).

Runs a service `name` with
`@event_handler("some-service", "salesforce_contact_created")`, prints
{"ready": true}, then calls `some-service` with ClusterRpcProxy and prints
{"calls": [...]} ({"ok": result} or {"error": {...}} per call), then one
{"event": payload} line per event received. Exits after `lifetime` seconds.
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402  (as `nameko run` does)

import json
import os
import sys

import yaml
from nameko.cli.main import setup_yaml_parser
from nameko.events import event_handler
from nameko.runners import ServiceRunner
from nameko.standalone.rpc import ClusterRpcProxy

CFG = json.loads(sys.argv[1])


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


class Listener:
    name = CFG["name"]

    @event_handler("some-service", "salesforce_contact_created")
    def on_contact_created(self, payload):
        emit({"event": payload})


def describe(exc):
    return {"class": type(exc).__name__, "module": type(exc).__module__, "str": str(exc)}


def call(proxy, method, *args, **kwargs):
    try:
        return {"ok": getattr(proxy["some-service"], method)(*args, **kwargs)}
    except Exception as exc:  # noqa: BLE001 - report whatever the caller sees
        return {"error": describe(exc)}


def main():
    def watchdog():
        eventlet.sleep(float(CFG.get("lifetime", 60)))
        os._exit(3)

    eventlet.spawn(watchdog)
    setup_yaml_parser()
    with open(CFG["config"]) as config_file:
        config = yaml.safe_load(config_file)
    runner = ServiceRunner(config)
    runner.add_service(Listener)
    runner.start()
    emit({"ready": True})
    with ClusterRpcProxy(config, timeout=20) as proxy:
        calls = [
            call(proxy, "create_contact", "Yo", "yo@yo.yo"),
            call(proxy, "create_contact", last_name="Kw", email_address="kw@yo.yo"),
            call(proxy, "no_such_method"),
            call(proxy, "create_contact", "only-one"),
        ]
    emit({"calls": calls})
    runner.wait()


if __name__ == "__main__":
    main()

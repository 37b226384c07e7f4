"""A Nameko 2.14 service that keeps only plain `@event_handler`s: the Python
side of docs/python.md's "Nameko services" section (tests/quickstart.rs,
`sfstream_run_dispatches_to_a_python_service_with_plain_event_handlers`).

argv[1]: JSON {"config", "source", "lifetime"}: "config" is the YAML file
`sfstream run --config` reads too (AMQP_URI and the rest; the SALESFORCE
section is ignored by Nameko), "source" the sfstream service's name.

Prints {"ready": true} once the service runs, then one
{"event": type, "payload": payload} line per event handled. Exits after
`lifetime` seconds.
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

CFG = json.loads(sys.argv[1])
SOURCE = CFG["source"]


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


class ContactService:
    """No Salesforce code: sfstream streams Salesforce and dispatches."""

    name = "contacts"

    @event_handler(SOURCE, "salesforce_contact_created")
    def on_contact_created(self, payload):
        emit({"event": "salesforce_contact_created", "payload": payload})

    @event_handler(SOURCE, "salesforce_contact_updated")
    def on_contact_updated(self, payload):
        emit({"event": "salesforce_contact_updated", "payload": payload})


def main():
    def watchdog():
        eventlet.sleep(float(CFG.get("lifetime", 60)))
        os._exit(3)

    eventlet.spawn(watchdog)
    setup_yaml_parser()
    with open(CFG["config"]) as config_file:
        config = yaml.safe_load(config_file)
    runner = ServiceRunner(config)
    runner.add_service(ContactService)
    runner.start()
    emit({"ready": True})
    runner.wait()


if __name__ == "__main__":
    main()

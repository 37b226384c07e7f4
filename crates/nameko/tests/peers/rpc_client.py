"""Calls RPC methods with nameko.standalone.rpc.ClusterRpcProxy and prints
one JSON document: a list with, per call, {"ok": result} or {"error": {...}}
describing the exception the Python caller got.

argv[1]: JSON {"amqp_uri", "calls": [{"service", "method", "args", "kwargs"}],
               "context_data": {...} (optional), "timeout": seconds}
"""
import json
import sys

from nameko.standalone.rpc import ClusterRpcProxy


def describe(exc):
    return {
        "class": type(exc).__name__,
        "module": type(exc).__module__,
        "args": [a if isinstance(a, (str, int, float, bool, type(None), list, dict)) else str(a) for a in exc.args],
        "str": str(exc),
        "exc_type": getattr(exc, "exc_type", None),
        "value": getattr(exc, "value", None),
    }


def main():
    spec = json.loads(sys.argv[1])
    config = {"AMQP_URI": spec["amqp_uri"]}
    results = []
    with ClusterRpcProxy(config, context_data=spec.get("context_data"),
                         timeout=spec.get("timeout", 10)) as proxy:
        for call in spec["calls"]:
            method = getattr(proxy[call["service"]], call["method"])
            try:
                results.append({"ok": method(*call.get("args", []), **call.get("kwargs", {}))})
            except Exception as exc:  # noqa: BLE001 - report whatever the caller sees
                results.append({"error": describe(exc)})
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()

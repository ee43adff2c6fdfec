"""A proxyless xDS client on gRPC C-core (Debian's python3-grpcio).

It calls grpc.testing.TestService/UnaryCall on an xds:/// target and counts
who answered by the x-version and x-pod headers podsim's gRPC pods send
back. C-core finds its xDS server in the bootstrap named by the environment
(GRPC_XDS_BOOTSTRAP: a file, or GRPC_XDS_BOOTSTRAP_CONFIG: inline JSON).

One measurement:

    xdsclient.py xds:///podinfo.ns:9999 --calls 1000 --metadata x-canary=insider

prints one JSON object and exits. With --serve it keeps one channel, prints
{"ready": true} once the first call has been answered, then reads one JSON
request a line from stdin, {"n": 5000, "metadata": {"x-canary": "insider"}},
and answers each with one JSON line, until stdin ends: a long-lived client,
as a proxyless service is, measured again and again without reconnecting.

The requests and answers are raw bytes: an empty SimpleRequest is the empty
byte string, and the answer's body is not read.

Exit status: 0 when every measurement was made (failed calls are counted,
not fatal), 2 on a bad argument, 3 when the channel never answered its
first call (after printing {"setup_error": ...}), 1 on a bad request line.
"""

import argparse
import json
import sys
import threading
import time

import grpc

METHOD = "/grpc.testing.TestService/UnaryCall"


class Tally:
    """Counts the answers of one measurement; safe across grpc's threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.versions = {}
        self.pods = {}
        self.errors = 0
        self.last_error = ""

    def record(self, future):
        err = future.exception()
        with self._lock:
            if err is not None:
                self.errors += 1
                self.last_error = describe(err)
                return
            headers = dict(future.initial_metadata() or ())
            version = headers.get("x-version", "")
            pod = headers.get("x-pod", "")
            self.versions[version] = self.versions.get(version, 0) + 1
            self.pods[pod] = self.pods.get(pod, 0) + 1

    def result(self, calls, seconds):
        return {
            "calls": calls,
            "versions": self.versions,
            "pods": self.pods,
            "errors": self.errors,
            "last_error": self.last_error,
            "seconds": round(seconds, 3),
        }


def describe(err):
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        return "%s: %s" % (err.code().name, err.details())
    return repr(err)


def measure(call, n, metadata, concurrency, timeout):
    """Makes n fail-fast calls, at most concurrency at a time."""
    tally = Tally()
    slots = threading.Semaphore(concurrency)
    md = tuple(sorted(metadata.items()))

    def done(future):
        tally.record(future)
        slots.release()

    start = time.monotonic()
    for _ in range(n):
        slots.acquire()
        call.future(b"", timeout=timeout, metadata=md).add_done_callback(done)
    for _ in range(concurrency):
        slots.acquire()
    return tally.result(n, time.monotonic() - start)


def first_call(call, timeout):
    """Waits for the channel's xDS configuration through one call."""
    try:
        call(b"", timeout=timeout, wait_for_ready=True)
    except grpc.RpcError as err:
        return describe(err)
    return None


def parse_metadata(pairs):
    md = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError("metadata %r: want key=value" % pair)
        md[key.lower()] = value
    return md


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def serve(call, args):
    """Answers one measurement request a line until stdin ends."""
    emit({"ready": True})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        n = int(req.get("n", 0))
        md = {k.lower(): str(v) for k, v in (req.get("metadata") or {}).items()}
        emit(measure(call, n, md, args.concurrency, args.timeout))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("target", help="xds:///name or xds:///name:port")
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--metadata", action="append", help="key=value request metadata (repeatable)")
    p.add_argument("--serve", action="store_true", help="answer measurement requests from stdin")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per call")
    p.add_argument("--setup-timeout", type=float, default=60.0, help="seconds for the first answer")
    args = p.parse_args(argv)
    try:
        md = parse_metadata(args.metadata)
    except ValueError as err:
        p.error(str(err))

    with grpc.insecure_channel(args.target) as channel:
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        err = first_call(call, args.setup_timeout)
        if err is not None:
            emit({"setup_error": err, "grpc_version": grpc.__version__})
            return 3
        if args.serve:
            serve(call, args)
        else:
            emit(measure(call, args.calls, md, args.concurrency, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

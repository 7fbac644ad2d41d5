"""What the grpcio interop server and client share: the grpc.testing messages and
services, compiled at run time from proto/interop/*.proto by grpcio-tools (nothing
generated is kept in the repository), and the status codes by number."""

import pathlib
import sys

import grpc

# proto/ at the crate root: the .proto files import each other as "interop/….proto",
# so the generated modules are interop.*_pb2 (not grpc.testing.*, which would shadow
# the grpc package).
PROTO_ROOT = pathlib.Path(__file__).resolve().parents[3] / "proto"
sys.path.insert(0, str(PROTO_ROOT))

empty = grpc.protos("interop/empty.proto")
messages = grpc.protos("interop/messages.proto")
services = grpc.services("interop/test.proto")

# grpc.StatusCode by its number on the wire.
CODES = {code.value[0]: code for code in grpc.StatusCode}

# Metadata the server echoes back (interop-test-descriptions.md, "Echo Metadata").
ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"

# No proxy from the environment: every call goes to 127.0.0.1 as given.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


def zeros(size):
    """A payload whose body is `size` zero bytes."""
    return messages.Payload(body=bytes(size))


def parse_args(argv, **defaults):
    """`--name=value` arguments (the interop convention) over `defaults`."""
    args = dict(defaults)
    for arg in argv:
        name, sep, value = arg.partition("=")
        key = name[2:]
        if not name.startswith("--") or not sep or key not in defaults:
            sys.exit(f"unknown argument {arg!r}; known: " + ", ".join(f"--{k}=…" for k in defaults))
        args[key] = value
    return args

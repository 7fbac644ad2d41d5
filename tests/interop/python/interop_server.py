"""The gRPC interop test server on grpcio (gRPC's C core), for tests/interop.rs.

Serves grpc.testing.TestService on 127.0.0.1:--port, plaintext HTTP/2, with the
server features of grpc's doc/interop-test-descriptions.md: EmptyCall, UnaryCall,
StreamingOutputCall, StreamingInputCall, FullDuplexCall, HalfDuplexCall, Echo Status,
Echo Metadata and ResponseParameters.interval_us. UnimplementedCall is left to
grpcio's generated base class, which answers UNIMPLEMENTED; UnimplementedService is
not served at all.

Prints "ready" on standard output once it listens.
"""

import sys
import time
from concurrent import futures

import grpc

from interop_common import (
    CHANNEL_OPTIONS,
    CODES,
    ECHO_INITIAL,
    ECHO_TRAILING,
    empty,
    messages,
    parse_args,
    services,
    zeros,
)


def echo_metadata(context):
    """Echo Metadata: the initial key back as initial metadata, the -bin key as a
    trailer."""
    received = dict(context.invocation_metadata())
    if ECHO_INITIAL in received:
        context.send_initial_metadata(((ECHO_INITIAL, received[ECHO_INITIAL]),))
    if ECHO_TRAILING in received:
        context.set_trailing_metadata(((ECHO_TRAILING, received[ECHO_TRAILING]),))


def echo_status(request, context):
    """Echo Status: ends the call with the status the request asks for, if any."""
    if request.HasField("response_status") and request.response_status.code != 0:
        status = request.response_status
        context.abort(CODES.get(status.code, grpc.StatusCode.UNKNOWN), status.message)


def responses(request):
    """One response per ResponseParameters, each after its interval."""
    for params in request.response_parameters:
        if params.interval_us > 0:
            time.sleep(params.interval_us / 1e6)
        yield messages.StreamingOutputCallResponse(payload=zeros(params.size))


class TestService(services.TestServiceServicer):
    def EmptyCall(self, request, context):
        echo_metadata(context)
        return empty.Empty()

    def UnaryCall(self, request, context):
        echo_metadata(context)
        echo_status(request, context)
        return messages.SimpleResponse(payload=zeros(request.response_size))

    def StreamingOutputCall(self, request, context):
        echo_metadata(context)
        yield from responses(request)
        echo_status(request, context)

    def StreamingInputCall(self, request_iterator, context):
        echo_metadata(context)
        total = sum(len(r.payload.body) for r in request_iterator)
        return messages.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        for request in request_iterator:
            echo_status(request, context)
            yield from responses(request)

    def HalfDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        for request in list(request_iterator):
            echo_status(request, context)
            yield from responses(request)


def main():
    args = parse_args(sys.argv[1:], port="", use_tls="false")
    if args["use_tls"] != "false":
        sys.exit("only --use_tls=false is supported")
    if not args["port"].isdigit():
        sys.exit("--port=PORT is required")
    # A thread per call in flight: the matrix runs a few clients at once, and a
    # call that hangs holds its thread until its deadline.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), options=CHANNEL_OPTIONS)
    services.add_TestServiceServicer_to_server(TestService(), server)
    port = int(args["port"])
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

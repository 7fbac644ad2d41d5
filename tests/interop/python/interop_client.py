"""The gRPC interop test client on grpcio (gRPC's C core), for tests/interop.rs.

Runs the cases of grpc's doc/interop-test-descriptions.md named by --test_cases
(comma-separated, or "all") against --server_host:--server_port, plaintext HTTP/2,
each on a channel of its own and every call with a deadline of --case_timeout_ms
(so a hang fails in seconds). Prints one JSON line per case on standard output:
{"case": NAME, "ok": true} or {"case": NAME, "ok": false, "error": WHY}.
Exits 0 whatever the cases' outcomes: the caller reads the lines.
"""

import json
import queue
import sys
import time

import grpc

from interop_common import (
    CHANNEL_OPTIONS,
    ECHO_INITIAL,
    ECHO_TRAILING,
    empty,
    messages,
    parse_args,
    services,
    zeros,
)

M = messages
# Sizes of the streaming cases: requests sent, responses asked for.
REQUEST_SIZES = (27182, 8, 1828, 45904)
RESPONSE_SIZES = (31415, 9, 2653, 58979)
INITIAL_VALUE = "test_initial_metadata_value"
TRAILING_VALUE = b"\xab\xab\xab"
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


class Failure(Exception):
    """A case's assertion that did not hold."""


def check(condition, why):
    if not condition:
        raise Failure(why)


def check_payload(payload, size, what):
    body = payload.body
    check(len(body) == size, f"{what}: payload body is {len(body)} bytes, expected {size}")
    check(body == bytes(size), f"{what}: payload body is not all zeros")


def next_response(responses, what):
    try:
        return next(responses)
    except StopIteration:
        raise Failure(f"{what}: the response stream ended early") from None


def expect_status(call, code, message, what):
    """Runs `call`, which must fail with `code` (and `message`, unless None)."""
    try:
        call()
    except grpc.RpcError as e:
        got = (e.code(), e.details())
        check(
            got[0] == code and (message is None or got[1] == message),
            f"{what}: got {got[0].name} {got[1]!r}, expected {code.name}"
            + ("" if message is None else f" {message!r}"),
        )
        return
    raise Failure(f"{what} succeeded, expected {code.name}")


def check_echo(initial, trailing, what):
    initial, trailing = dict(initial or ()), dict(trailing or ())
    check(
        initial.get(ECHO_INITIAL) == INITIAL_VALUE,
        f"{what}: initial metadata {ECHO_INITIAL} is {initial.get(ECHO_INITIAL)!r}",
    )
    check(
        trailing.get(ECHO_TRAILING) == TRAILING_VALUE,
        f"{what}: trailing metadata {ECHO_TRAILING} is {trailing.get(ECHO_TRAILING)!r}",
    )


class Pipe:
    """A request stream the case feeds: iterating blocks until the next message or
    close(). grpcio reads it on a thread of its own."""

    _END = object()

    def __init__(self):
        self._queue = queue.Queue()

    def send(self, message):
        self._queue.put(message)

    def close(self):
        self._queue.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        message = self._queue.get()
        if message is self._END:
            self._queue.put(self._END)
            raise StopIteration
        return message


def streaming_request(response_size=None, request_size=None, status=None):
    return M.StreamingOutputCallRequest(
        response_parameters=[] if response_size is None else [M.ResponseParameters(size=response_size)],
        payload=None if request_size is None else zeros(request_size),
        response_status=status,
    )


class Case:
    """One case's channel and stubs; every call gets `timeout` seconds."""

    def __init__(self, channel, timeout):
        self.channel = channel
        self.stub = services.TestServiceStub(channel)
        self.timeout = timeout

    def still_serves(self):
        """After a cancel: the same channel still completes a call."""
        try:
            self.stub.EmptyCall(empty.Empty(), timeout=self.timeout)
        except grpc.RpcError as e:
            raise Failure(f"EmptyCall after the cancel failed: {e.code().name} {e.details()!r}") from None


def empty_unary(c):
    response = c.stub.EmptyCall(empty.Empty(), timeout=c.timeout)
    check(isinstance(response, empty.Empty), f"EmptyCall answered {type(response).__name__}")


def large_unary(c):
    request = M.SimpleRequest(response_size=314159, payload=zeros(271828))
    check_payload(c.stub.UnaryCall(request, timeout=c.timeout).payload, 314159, "UnaryCall")


def client_streaming(c):
    requests = [M.StreamingInputCallRequest(payload=zeros(n)) for n in REQUEST_SIZES]
    response = c.stub.StreamingInputCall(iter(requests), timeout=c.timeout)
    got = response.aggregated_payload_size
    check(got == 74922, f"aggregated_payload_size is {got}, expected 74922")


def server_streaming(c):
    request = M.StreamingOutputCallRequest(
        response_parameters=[M.ResponseParameters(size=n) for n in RESPONSE_SIZES]
    )
    responses = list(c.stub.StreamingOutputCall(request, timeout=c.timeout))
    sizes = [len(r.payload.body) for r in responses]
    check(sizes == list(RESPONSE_SIZES), f"response sizes {sizes}, expected {list(RESPONSE_SIZES)}")
    for r in responses:
        check_payload(r.payload, len(r.payload.body), "StreamingOutputCall")


def ping_pong(c):
    requests = Pipe()
    try:
        responses = c.stub.FullDuplexCall(requests, timeout=c.timeout)
        for i, (response_size, request_size) in enumerate(zip(RESPONSE_SIZES, REQUEST_SIZES)):
            requests.send(streaming_request(response_size, request_size))
            response = next_response(responses, f"response {i + 1}")
            check_payload(response.payload, response_size, f"response {i + 1}")
        requests.close()
        rest = list(responses)
        check(not rest, f"{len(rest)} responses after the fourth")
    finally:
        requests.close()


def empty_stream(c):
    responses = list(c.stub.FullDuplexCall(iter(()), timeout=c.timeout))
    check(not responses, f"{len(responses)} responses, expected none")


def custom_metadata(c):
    metadata = ((ECHO_INITIAL, INITIAL_VALUE), (ECHO_TRAILING, TRAILING_VALUE))
    request = M.SimpleRequest(response_size=314159, payload=zeros(271828))
    response, call = c.stub.UnaryCall.with_call(request, metadata=metadata, timeout=c.timeout)
    check_payload(response.payload, 314159, "UnaryCall")
    check_echo(call.initial_metadata(), call.trailing_metadata(), "UnaryCall")

    request = streaming_request(314159, 271828)
    responses = c.stub.FullDuplexCall(iter([request]), metadata=metadata, timeout=c.timeout)
    got = list(responses)
    check(len(got) == 1, f"FullDuplexCall: {len(got)} responses, expected 1")
    check_payload(got[0].payload, 314159, "FullDuplexCall")
    check_echo(responses.initial_metadata(), responses.trailing_metadata(), "FullDuplexCall")


def status_code_and_message(c):
    message = "test status message"
    status = M.EchoStatus(code=2, message=message)
    expect_status(
        lambda: c.stub.UnaryCall(M.SimpleRequest(response_status=status), timeout=c.timeout),
        grpc.StatusCode.UNKNOWN,
        message,
        "UnaryCall",
    )
    expect_status(
        lambda: list(c.stub.FullDuplexCall(iter([streaming_request(status=status)]), timeout=c.timeout)),
        grpc.StatusCode.UNKNOWN,
        message,
        "FullDuplexCall",
    )


def special_status_message(c):
    status = M.EchoStatus(code=2, message=SPECIAL_MESSAGE)
    expect_status(
        lambda: c.stub.UnaryCall(M.SimpleRequest(response_status=status), timeout=c.timeout),
        grpc.StatusCode.UNKNOWN,
        SPECIAL_MESSAGE,
        "UnaryCall",
    )


def unimplemented_method(c):
    expect_status(
        lambda: c.stub.UnimplementedCall(empty.Empty(), timeout=c.timeout),
        grpc.StatusCode.UNIMPLEMENTED,
        None,
        "TestService/UnimplementedCall",
    )


def unimplemented_service(c):
    stub = services.UnimplementedServiceStub(c.channel)
    expect_status(
        lambda: stub.UnimplementedCall(empty.Empty(), timeout=c.timeout),
        grpc.StatusCode.UNIMPLEMENTED,
        None,
        "UnimplementedService/UnimplementedCall",
    )


def cancel_after_begin(c):
    requests = Pipe()
    try:
        call = c.stub.StreamingInputCall.future(requests, timeout=c.timeout)
        call.cancel()
        check(call.code() == grpc.StatusCode.CANCELLED, f"the call ended with {call.code().name}")
    finally:
        requests.close()
    c.still_serves()


def cancel_after_first_response(c):
    requests = Pipe()
    try:
        responses = c.stub.FullDuplexCall(requests, timeout=c.timeout)
        requests.send(streaming_request(31415, 27182))
        check_payload(next_response(responses, "FullDuplexCall").payload, 31415, "response 1")
        responses.cancel()
        check(responses.code() == grpc.StatusCode.CANCELLED, f"the call ended with {responses.code().name}")
    finally:
        requests.close()
    c.still_serves()


def timeout_on_sleeping_server(c):
    requests = Pipe()
    try:
        requests.send(streaming_request(request_size=27182))
        expect_status(
            lambda: list(c.stub.FullDuplexCall(requests, timeout=0.001)),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            None,
            "FullDuplexCall with a 1 ms deadline",
        )
    finally:
        requests.close()


CASES = {
    f.__name__: f
    for f in (
        empty_unary,
        large_unary,
        client_streaming,
        server_streaming,
        ping_pong,
        empty_stream,
        custom_metadata,
        status_code_and_message,
        special_status_message,
        unimplemented_method,
        unimplemented_service,
        cancel_after_begin,
        cancel_after_first_response,
        timeout_on_sleeping_server,
    )
}


def describe(error):
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return f"{error.code().name}: {error.details()!r}"
    if isinstance(error, Failure):
        return str(error)
    return f"{type(error).__name__}: {error}"


def main():
    args = parse_args(
        sys.argv[1:],
        server_host="127.0.0.1",
        server_port="",
        test_cases="all",
        case_timeout_ms="5000",
        use_tls="false",
    )
    if args["use_tls"] != "false":
        sys.exit("only --use_tls=false is supported")
    names = list(CASES) if args["test_cases"] == "all" else args["test_cases"].split(",")
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"unknown test cases: {', '.join(unknown)}")
    target = f"{args['server_host']}:{args['server_port']}"
    timeout = int(args["case_timeout_ms"]) / 1000
    for name in names:
        started = time.monotonic()
        channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        try:
            CASES[name](Case(channel, timeout))
            result = {"case": name, "ok": True}
        except Exception as e:  # every failure is the case's result
            result = {"case": name, "ok": False, "error": describe(e)}
        finally:
            channel.close()
        result["ms"] = round((time.monotonic() - started) * 1000)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

'use strict';
// The gRPC interop test client on @grpc/grpc-js (Node's own HTTP/2), for
// tests/interop.rs.
//
// Runs the cases of grpc's doc/interop-test-descriptions.md named by --test_cases
// (comma-separated, or "all") against --server_host:--server_port, plaintext HTTP/2,
// each on a client (channel) of its own and every call with a deadline of
// --case_timeout_ms (so a hang fails in seconds). Prints one JSON line per case on
// standard output: {"case": NAME, "ok": true} or {"case": NAME, "ok": false,
// "error": WHY}. Exits 0 whatever the cases' outcomes: the caller reads the lines.

const { grpc, testing, ECHO_INITIAL, ECHO_TRAILING, CHANNEL_OPTIONS, zeros, parseArgs } = require('./common');

const Status = grpc.status;
// Sizes of the streaming cases: requests sent, responses asked for.
const REQUEST_SIZES = [27182, 8, 1828, 45904];
const RESPONSE_SIZES = [31415, 9, 2653, 58979];
const INITIAL_VALUE = 'test_initial_metadata_value';
const TRAILING_VALUE = Buffer.from([0xab, 0xab, 0xab]);
const SPECIAL_MESSAGE = '\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \u{1f608}\t\n';
const STATUS_NAMES = Object.fromEntries(
  Object.entries(Status)
    .filter(([, code]) => typeof code === 'number')
    .map(([name, code]) => [code, name]),
);

/** A case's assertion that did not hold. */
class Failure extends Error {}

function check(condition, why) {
  if (!condition) {
    throw new Failure(why);
  }
}

function checkPayload(payload, size, what) {
  const body = payload ? payload.body : Buffer.alloc(0);
  check(body.length === size, `${what}: payload body is ${body.length} bytes, expected ${size}`);
  check(body.every((b) => b === 0), `${what}: payload body is not all zeros`);
}

function describeStatus(status) {
  return `${STATUS_NAMES[status.code] || status.code} ${JSON.stringify(status.details)}`;
}

/** The end of a call as seen by the client: status, headers and trailers. */
function outcome(call, extra = {}) {
  return new Promise((resolve) => {
    let initial = null;
    call.on('metadata', (md) => {
      initial = md;
    });
    call.on('error', () => {}); // the status event carries it
    call.on('status', (status) => resolve({ status, initial, trailing: status.metadata, ...extra }));
  });
}

/** A unary or client-streaming call: starts it with `start(callback)`, resolves when it ends. */
function unary(start) {
  let response = null;
  const call = start((error, value) => {
    response = error ? null : value;
  });
  const done = outcome(call);
  return { call, done: done.then((end) => ({ ...end, response })) };
}

/** Reads a response stream one message at a time: `next()` resolves to a message, or null at its end. */
class Reader {
  constructor(call) {
    this.messages = [];
    this.waiting = null;
    this.ended = false;
    this.done = outcome(call);
    call.on('data', (message) => {
      this.messages.push(message);
      this.wake();
    });
    this.done.then(() => {
      this.ended = true;
      this.wake();
    });
  }

  wake() {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve();
    }
  }

  async next() {
    while (this.messages.length === 0 && !this.ended) {
      await new Promise((resolve) => {
        this.waiting = resolve;
      });
    }
    return this.messages.length > 0 ? this.messages.shift() : null;
  }

  async rest() {
    const end = await this.done;
    return { ...end, messages: this.messages.splice(0) };
  }
}

function checkOk(end, what) {
  check(end.status.code === Status.OK, `${what}: ${describeStatus(end.status)}`);
}

function expectStatus(end, code, message, what) {
  const got = end.status;
  check(
    got.code === code && (message === null || got.details === message),
    `${what}: got ${describeStatus(got)}, expected ${STATUS_NAMES[code]}${message === null ? '' : ` ${JSON.stringify(message)}`}`,
  );
}

function checkEcho(end, what) {
  const initial = end.initial ? end.initial.get(ECHO_INITIAL) : [];
  check(initial.length === 1 && initial[0] === INITIAL_VALUE, `${what}: initial metadata ${ECHO_INITIAL} is ${JSON.stringify(initial)}`);
  const trailing = end.trailing ? end.trailing.get(ECHO_TRAILING) : [];
  check(
    trailing.length === 1 && Buffer.isBuffer(trailing[0]) && trailing[0].equals(TRAILING_VALUE),
    `${what}: trailing metadata ${ECHO_TRAILING} is ${JSON.stringify(trailing)}`,
  );
}

function streamingRequest({ responseSize = null, requestSize = null, status = null } = {}) {
  return {
    response_parameters: responseSize === null ? [] : [{ size: responseSize }],
    payload: requestSize === null ? null : zeros(requestSize),
    response_status: status,
  };
}

/** One case's client (its own channel); every call gets `timeoutMs`. */
class Case {
  constructor(target, timeoutMs) {
    this.client = new testing.TestService(target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    this.target = target;
    this.timeoutMs = timeoutMs;
  }

  options(ms = this.timeoutMs) {
    return { deadline: new Date(Date.now() + ms) };
  }

  /** After a cancel: the same channel still completes a call. */
  async stillServes() {
    const end = await unary((cb) => this.client.EmptyCall({}, this.options(), cb)).done;
    checkOk(end, 'EmptyCall after the cancel');
  }

  close() {
    this.client.close();
  }
}

const cases = {
  async empty_unary(c) {
    const end = await unary((cb) => c.client.EmptyCall({}, c.options(), cb)).done;
    checkOk(end, 'EmptyCall');
    check(end.response !== null && typeof end.response === 'object', 'EmptyCall answered no message');
  },

  async large_unary(c) {
    const request = { response_size: 314159, payload: zeros(271828) };
    const end = await unary((cb) => c.client.UnaryCall(request, c.options(), cb)).done;
    checkOk(end, 'UnaryCall');
    checkPayload(end.response.payload, 314159, 'UnaryCall');
  },

  async client_streaming(c) {
    const { call, done } = unary((cb) => c.client.StreamingInputCall(c.options(), cb));
    for (const size of REQUEST_SIZES) {
      call.write({ payload: zeros(size) });
    }
    call.end();
    const end = await done;
    checkOk(end, 'StreamingInputCall');
    const got = end.response.aggregated_payload_size;
    check(got === 74922, `aggregated_payload_size is ${got}, expected 74922`);
  },

  async server_streaming(c) {
    const request = { response_parameters: RESPONSE_SIZES.map((size) => ({ size })) };
    const end = await new Reader(c.client.StreamingOutputCall(request, c.options())).rest();
    checkOk(end, 'StreamingOutputCall');
    const sizes = end.messages.map((m) => (m.payload ? m.payload.body.length : 0));
    check(JSON.stringify(sizes) === JSON.stringify(RESPONSE_SIZES), `response sizes ${JSON.stringify(sizes)}, expected ${JSON.stringify(RESPONSE_SIZES)}`);
    end.messages.forEach((m, i) => checkPayload(m.payload, RESPONSE_SIZES[i], `response ${i + 1}`));
  },

  async ping_pong(c) {
    const call = c.client.FullDuplexCall(c.options());
    const reader = new Reader(call);
    for (let i = 0; i < REQUEST_SIZES.length; i++) {
      call.write(streamingRequest({ responseSize: RESPONSE_SIZES[i], requestSize: REQUEST_SIZES[i] }));
      const response = await reader.next();
      if (response === null) {
        const end = await reader.rest();
        throw new Failure(`response ${i + 1}: the stream ended early with ${describeStatus(end.status)}`);
      }
      checkPayload(response.payload, RESPONSE_SIZES[i], `response ${i + 1}`);
    }
    call.end();
    const end = await reader.rest();
    checkOk(end, 'FullDuplexCall');
    check(end.messages.length === 0, `${end.messages.length} responses after the fourth`);
  },

  async empty_stream(c) {
    const call = c.client.FullDuplexCall(c.options());
    const reader = new Reader(call);
    call.end();
    const end = await reader.rest();
    checkOk(end, 'FullDuplexCall');
    check(end.messages.length === 0, `${end.messages.length} responses, expected none`);
  },

  async custom_metadata(c) {
    const metadata = () => {
      const md = new grpc.Metadata();
      md.set(ECHO_INITIAL, INITIAL_VALUE);
      md.set(ECHO_TRAILING, TRAILING_VALUE);
      return md;
    };
    const request = { response_size: 314159, payload: zeros(271828) };
    const end = await unary((cb) => c.client.UnaryCall(request, metadata(), c.options(), cb)).done;
    checkOk(end, 'UnaryCall');
    checkPayload(end.response.payload, 314159, 'UnaryCall');
    checkEcho(end, 'UnaryCall');

    const call = c.client.FullDuplexCall(metadata(), c.options());
    const reader = new Reader(call);
    call.write(streamingRequest({ responseSize: 314159, requestSize: 271828 }));
    call.end();
    const duplex = await reader.rest();
    checkOk(duplex, 'FullDuplexCall');
    check(duplex.messages.length === 1, `FullDuplexCall: ${duplex.messages.length} responses, expected 1`);
    checkPayload(duplex.messages[0].payload, 314159, 'FullDuplexCall');
    checkEcho(duplex, 'FullDuplexCall');
  },

  async status_code_and_message(c) {
    const message = 'test status message';
    const status = { code: 2, message };
    const unaryEnd = await unary((cb) => c.client.UnaryCall({ response_status: status }, c.options(), cb)).done;
    expectStatus(unaryEnd, Status.UNKNOWN, message, 'UnaryCall');

    const call = c.client.FullDuplexCall(c.options());
    const reader = new Reader(call);
    call.write(streamingRequest({ status }));
    call.end();
    expectStatus(await reader.rest(), Status.UNKNOWN, message, 'FullDuplexCall');
  },

  async special_status_message(c) {
    const status = { code: 2, message: SPECIAL_MESSAGE };
    const end = await unary((cb) => c.client.UnaryCall({ response_status: status }, c.options(), cb)).done;
    expectStatus(end, Status.UNKNOWN, SPECIAL_MESSAGE, 'UnaryCall');
  },

  async unimplemented_method(c) {
    const end = await unary((cb) => c.client.UnimplementedCall({}, c.options(), cb)).done;
    expectStatus(end, Status.UNIMPLEMENTED, null, 'TestService/UnimplementedCall');
  },

  async unimplemented_service(c) {
    const other = new testing.UnimplementedService(c.target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    try {
      const end = await unary((cb) => other.UnimplementedCall({}, c.options(), cb)).done;
      expectStatus(end, Status.UNIMPLEMENTED, null, 'UnimplementedService/UnimplementedCall');
    } finally {
      other.close();
    }
  },

  async cancel_after_begin(c) {
    const { call, done } = unary((cb) => c.client.StreamingInputCall(c.options(), cb));
    call.cancel();
    expectStatus(await done, Status.CANCELLED, null, 'StreamingInputCall');
    await c.stillServes();
  },

  async cancel_after_first_response(c) {
    const call = c.client.FullDuplexCall(c.options());
    const reader = new Reader(call);
    call.write(streamingRequest({ responseSize: 31415, requestSize: 27182 }));
    const response = await reader.next();
    if (response === null) {
      const end = await reader.rest();
      throw new Failure(`FullDuplexCall ended before its first response with ${describeStatus(end.status)}`);
    }
    checkPayload(response.payload, 31415, 'response 1');
    call.cancel();
    expectStatus(await reader.rest(), Status.CANCELLED, null, 'FullDuplexCall');
    await c.stillServes();
  },

  async timeout_on_sleeping_server(c) {
    const call = c.client.FullDuplexCall(c.options(1));
    const reader = new Reader(call);
    call.write(streamingRequest({ requestSize: 27182 }));
    expectStatus(await reader.rest(), Status.DEADLINE_EXCEEDED, null, 'FullDuplexCall with a 1 ms deadline');
  },
};

function describe(error) {
  return error instanceof Failure ? error.message : `${error.name}: ${error.message}`;
}

async function main() {
  const args = parseArgs(process.argv.slice(2), {
    server_host: '127.0.0.1',
    server_port: '',
    test_cases: 'all',
    case_timeout_ms: '5000',
    use_tls: 'false',
  });
  if (args.use_tls !== 'false') {
    console.error('only --use_tls=false is supported');
    process.exit(2);
  }
  const names = args.test_cases === 'all' ? Object.keys(cases) : args.test_cases.split(',');
  const unknown = names.filter((n) => !(n in cases));
  if (unknown.length > 0) {
    console.error(`unknown test cases: ${unknown.join(', ')}`);
    process.exit(2);
  }
  const target = `${args.server_host}:${args.server_port}`;
  const timeoutMs = Number(args.case_timeout_ms);
  for (const name of names) {
    const started = process.hrtime.bigint();
    const c = new Case(target, timeoutMs);
    let result;
    try {
      await cases[name](c);
      result = { case: name, ok: true };
    } catch (error) {
      result = { case: name, ok: false, error: describe(error) };
    } finally {
      c.close();
    }
    result.ms = Number((process.hrtime.bigint() - started) / 1000000n);
    console.log(JSON.stringify(result));
  }
  // A call left hanging must not keep the process alive.
  process.exit(0);
}

main();

'use strict';
// The gRPC interop test server on @grpc/grpc-js (Node's own HTTP/2), for
// tests/interop.rs.
//
// Serves grpc.testing.TestService on 127.0.0.1:--port, plaintext HTTP/2, with the
// server features of grpc's doc/interop-test-descriptions.md: EmptyCall, UnaryCall,
// StreamingOutputCall, StreamingInputCall, FullDuplexCall, HalfDuplexCall, Echo
// Status, Echo Metadata and ResponseParameters.interval_us. UnimplementedCall has no
// handler, so grpc-js answers UNIMPLEMENTED; UnimplementedService is not served.
//
// Prints "ready" on standard output once it listens.

const { grpc, testing, ECHO_INITIAL, ECHO_TRAILING, CHANNEL_OPTIONS, zeros, parseArgs } = require('./common');

/**
 * Echo Metadata: sends the initial key back as initial metadata now, and returns
 * the trailers to end the call with (the -bin key, if it came).
 */
function echoMetadata(call) {
  const initial = call.metadata.get(ECHO_INITIAL);
  if (initial.length > 0) {
    const md = new grpc.Metadata();
    md.set(ECHO_INITIAL, initial[0]);
    call.sendMetadata(md);
  }
  const trailers = new grpc.Metadata();
  const trailing = call.metadata.get(ECHO_TRAILING);
  if (trailing.length > 0) {
    trailers.set(ECHO_TRAILING, trailing[0]);
  }
  return trailers;
}

/** Echo Status: the error to end the call with, if the request asks for one. */
function echoStatus(request, trailers) {
  const status = request.response_status;
  if (status && status.code !== 0) {
    return { code: status.code, details: status.message, metadata: trailers };
  }
  return null;
}

const sleep = (us) => new Promise((resolve) => setTimeout(resolve, us / 1000));

/** Writes one response per ResponseParameters, each after its interval. */
async function respond(call, request) {
  for (const params of request.response_parameters) {
    if (params.interval_us > 0) {
      await sleep(params.interval_us);
    }
    if (call.cancelled) {
      return;
    }
    call.write({ payload: zeros(params.size) });
  }
}

/** Answers each request of a streaming call in order; `buffer` waits for them all. */
function serveStream(call, buffer) {
  const trailers = echoMetadata(call);
  const requests = [];
  let chain = Promise.resolve();
  let failed = false;
  const handle = (request) => {
    chain = chain.then(async () => {
      if (failed) {
        return;
      }
      const error = echoStatus(request, trailers);
      if (error) {
        failed = true;
        call.emit('error', error);
        return;
      }
      await respond(call, request);
    });
  };
  call.on('data', (request) => (buffer ? requests.push(request) : handle(request)));
  call.on('end', () => {
    requests.forEach(handle);
    chain.then(() => failed || call.end(trailers));
  });
  call.on('error', () => {}); // a cancelled call: nothing more to send
}

const service = {
  EmptyCall(call, callback) {
    callback(null, {}, echoMetadata(call));
  },
  UnaryCall(call, callback) {
    const trailers = echoMetadata(call);
    const error = echoStatus(call.request, trailers);
    if (error) {
      callback(error);
      return;
    }
    callback(null, { payload: zeros(call.request.response_size) }, trailers);
  },
  StreamingOutputCall(call) {
    const trailers = echoMetadata(call);
    respond(call, call.request).then(() => {
      const error = echoStatus(call.request, trailers);
      if (error) {
        call.emit('error', error);
      } else {
        call.end(trailers);
      }
    });
  },
  StreamingInputCall(call, callback) {
    const trailers = echoMetadata(call);
    let total = 0;
    call.on('data', (request) => {
      total += request.payload ? request.payload.body.length : 0;
    });
    call.on('end', () => callback(null, { aggregated_payload_size: total }, trailers));
    call.on('error', () => {});
  },
  FullDuplexCall(call) {
    serveStream(call, false);
  },
  HalfDuplexCall(call) {
    serveStream(call, true);
  },
};

function main() {
  const args = parseArgs(process.argv.slice(2), { port: '', use_tls: 'false' });
  if (args.use_tls !== 'false') {
    console.error('only --use_tls=false is supported');
    process.exit(2);
  }
  if (!/^\d+$/.test(args.port)) {
    console.error('--port=PORT is required');
    process.exit(2);
  }
  const server = new grpc.Server(CHANNEL_OPTIONS);
  server.addService(testing.TestService.service, service);
  server.bindAsync(`127.0.0.1:${args.port}`, grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error || port !== Number(args.port)) {
      console.error(`cannot listen on 127.0.0.1:${args.port}: ${error ? error.message : `got port ${port}`}`);
      process.exit(1);
    }
    console.log('ready');
  });
}

main();

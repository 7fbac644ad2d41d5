'use strict';
// What the grpc-js interop server and client share: the grpc.testing services,
// loaded at run time from proto/interop/*.proto by @grpc/proto-loader (field names
// as in the .proto, bytes as Buffers, absent fields as their defaults), and the
// `--name=value` argument convention of the interop programs.

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', '..', 'proto');
const definition = protoLoader.loadSync('interop/test.proto', {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  defaults: true,
});
const testing = grpc.loadPackageDefinition(definition).grpc.testing;

// Metadata the server echoes back (interop-test-descriptions.md, "Echo Metadata").
const ECHO_INITIAL = 'x-grpc-test-echo-initial';
const ECHO_TRAILING = 'x-grpc-test-echo-trailing-bin';

// No proxy from the environment: every call goes to 127.0.0.1 as given.
const CHANNEL_OPTIONS = { 'grpc.enable_http_proxy': 0 };

/** A payload whose body is `size` zero bytes. */
function zeros(size) {
  return { type: 'COMPRESSABLE', body: Buffer.alloc(size) };
}

/** `--name=value` arguments over `defaults`; exits on an unknown one. */
function parseArgs(argv, defaults) {
  const args = { ...defaults };
  for (const arg of argv) {
    const m = /^--([a-z_]+)=(.*)$/s.exec(arg);
    if (!m || !(m[1] in defaults)) {
      console.error(`unknown argument ${JSON.stringify(arg)}; known: ${Object.keys(defaults).map((k) => `--${k}=…`).join(', ')}`);
      process.exit(2);
    }
    args[m[1]] = m[2];
  }
  return args;
}

module.exports = { grpc, testing, ECHO_INITIAL, ECHO_TRAILING, CHANNEL_OPTIONS, zeros, parseArgs };

// Runs the filter's .wasm in node's V8 under a minimal proxy-wasm ABI 0.2.1 host and drives
// requests through the upstream placement, passthrough payload, GET path (what `make bench`
// measures in Envoy), to profile the CPU spent inside the VM.
//
//   node --no-liftoff bench/v8-harness/harness.cjs [--requests N] [--rounds R] [--count] [WASM]
//   node --no-liftoff --cpu-prof --cpu-prof-dir=/tmp/prof bench/v8-harness/harness.cjs ...
//   node bench/v8-harness/profile-summary.cjs /tmp/prof/*.cpuprofile
//
// Run with --no-liftoff as Envoy does (TurboFan only). --count prints host calls per request.
'use strict';
const fs = require('fs');
const crypto = require('crypto');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const flag = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return false;
  args.splice(i, 1);
  return true;
};
const REQUESTS = Number(opt('--requests', '200000'));
const ROUNDS = Number(opt('--rounds', '5'));
const COUNT = flag('--count');
const WARMUP = Number(opt('--warmup', '20000'));
// --body N: a POST with an N-byte body instead of the GET (e.g. 262144: the payload hash).
const BODY = Buffer.alloc(Number(opt('--body', '0')), 0x61);
// --payload apigw_v2 (or another event format): the event built, the proxy response decoded.
const PAYLOAD = opt('--payload', 'passthrough');
const WASM = args[0] || 'target/wasm32-wasip1/release/proxy_wasm_lambda.wasm';

const PLUGIN_CONFIG = JSON.stringify({
  function: 'arn:aws:lambda:us-east-1:123456789012:function:bench',
  region: 'us-east-1',
  endpoint: 'lambda.us-east-1.amazonaws.com',
  payload: PAYLOAD,
  timeout_ms: 10000,
  credentials: { access_key_id: 'AKIDBENCHEXAMPLE', secret_access_key: 'bench/secret/key/EXAMPLE' },
});
const PROPERTIES = new Map([
  ['upstream\0address', '127.0.0.1:9000'],
  ['xds\0cluster_name', 'lambda'],
  ['request\0protocol', 'HTTP/1.1'],
  ['source\0address', '127.0.0.1:1234'],
]);
const ANSWER_BODY = Buffer.from('{"statusCode":200,"body":"hello from the bench function","headers":{"x-bench":"1"}}    ');
const requestHeaders = () => [
  [':method', BODY.length ? 'POST' : 'GET'],
  ...(BODY.length ? [['content-length', String(BODY.length)]] : []),
  [':path', '/'],
  [':authority', 'localhost'],
  [':scheme', 'http'],
  ['user-agent', 'wrk'],
  ['x-request-id', '4b1c3e0a-8f2d-4c55-9d0e-6a7b8c9d0e1f'],
  ['x-forwarded-proto', 'http'],
];
const answerHeaders = () => [
  [':status', '200'],
  ['content-type', 'application/json'],
  ['content-length', String(ANSWER_BODY.length)],
  ['x-amzn-requestid', '0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9'],
  ['x-amz-executed-version', '$LATEST'],
  ['date', 'Mon, 30 Nov 2026 08:00:00 GMT'],
];

// Host state.
const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2;
const maps = [];      // MapType -> [[name, value]]
const buffers = [];   // BufferType -> Buffer
buffers[6] = Buffer.alloc(0);
buffers[7] = Buffer.from(PLUGIN_CONFIG);
let signed = null;    // the first rewritten request map seen
const calls = new Map();
const localReplies = [];

let instance, memory;
// Views over guest memory, renewed when it grows. The host stubs are kept cheap (cached
// encodings, latin1 for header text) so that the profile shows the guest, not the harness.
let bytesView = null, dataView = null;
function views() {
  if (!bytesView || bytesView.buffer !== memory.buffer) {
    bytesView = Buffer.from(memory.buffer);
    dataView = new DataView(memory.buffer);
  }
}
const u8 = () => (views(), bytesView);
const dv = () => (views(), dataView);
const str = (ptr, len) => u8().latin1Slice(ptr, ptr + len);
const dec = new TextDecoder();
const encoded = new Map();
const enc = (s) => {
  let b = encoded.get(s);
  if (!b) encoded.set(s, (b = Buffer.from(s)));
  return b;
};

// Copies bytes into guest memory (allocated by the guest) and writes the out-params.
function give(bytes, ptrOut, sizeOut) {
  const ptr = bytes.length ? instance.exports.proxy_on_memory_allocate(bytes.length) : 0;
  if (bytes.length) u8().set(bytes, ptr);
  const view = dv();
  view.setUint32(ptrOut, ptr, true);
  view.setUint32(sizeOut, bytes.length, true);
  return OK;
}

const serialized = new WeakMap();
function serializeMap(pairs) {
  let out = serialized.get(pairs);
  if (out) return out;
  const e = pairs.map(([n, v]) => [enc(n), enc(v)]);
  let size = 4 + e.length * 8;
  for (const [n, v] of e) size += n.length + v.length + 2;
  out = Buffer.alloc(size);
  out.writeUInt32LE(e.length, 0);
  let off = 4;
  for (const [n, v] of e) {
    out.writeUInt32LE(n.length, off);
    out.writeUInt32LE(v.length, off + 4);
    off += 8;
  }
  for (const [n, v] of e) {
    n.copy(out, off); off += n.length + 1;
    v.copy(out, off); off += v.length + 1;
  }
  serialized.set(pairs, out);
  return out;
}

function parseMap(raw) {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
  const count = view.getUint32(0, true);
  const pairs = [];
  let lens = 4;
  let off = 4 + count * 8;
  for (let i = 0; i < count; i++) {
    const nl = view.getUint32(lens, true), vl = view.getUint32(lens + 4, true);
    lens += 8;
    const name = raw.latin1Slice(off, off + nl); off += nl + 1;
    const value = raw.latin1Slice(off, off + vl); off += vl + 1;
    pairs.push([name, value]);
  }
  return pairs;
}

// A map set by the guest is kept as its bytes and parsed when read.
function pairsOf(type) {
  const m = maps[type];
  if (!m) return (maps[type] = []);
  if (Array.isArray(m)) return m;
  return (maps[type] = parseMap(m));
}

const env = {
  proxy_log(level, ptr, len) {
    if (level >= 3 || COUNT) console.error(`[wasm log ${level}] ${str(ptr, len)}`);
    return OK;
  },
  proxy_get_log_level(out) { dv().setUint32(out, 3, true); return OK; }, // warn, as in the bench
  proxy_get_current_time_nanoseconds(out) {
    dv().setBigUint64(out, BigInt(Date.now()) * 1000000n, true);
    return OK;
  },
  proxy_set_tick_period_milliseconds() { return OK; },
  proxy_get_property(ptr, len, outPtr, outSize) {
    const value = PROPERTIES.get(str(ptr, len));
    return value === undefined ? NOT_FOUND : give(enc(value), outPtr, outSize);
  },
  proxy_set_property() { return OK; },
  proxy_get_header_map_value(type, ptr, len, outPtr, outSize) {
    const key = str(ptr, len).toLowerCase();
    const hit = pairsOf(type).find(([n]) => n === key);
    return hit ? give(enc(hit[1]), outPtr, outSize) : NOT_FOUND;
  },
  proxy_get_header_map_pairs(type, outPtr, outSize) {
    const m = maps[type];
    return give(m && !Array.isArray(m) ? m : serializeMap(pairsOf(type)), outPtr, outSize);
  },
  proxy_set_header_map_pairs(type, ptr, size) {
    maps[type] = Buffer.from(u8().subarray(ptr, ptr + size));
    if (type === 0 && !signed) signed = pairsOf(type);
    return OK;
  },
  proxy_replace_header_map_value(type, np, nl, vp, vl) {
    const name = str(np, nl), value = str(vp, vl);
    const m = (maps[type] = pairsOf(type).filter(([n]) => n !== name));
    m.push([name, value]);
    return OK;
  },
  proxy_add_header_map_value(type, np, nl, vp, vl) {
    maps[type] = [...pairsOf(type), [str(np, nl), str(vp, vl)]]; // templates stay intact
    return OK;
  },
  proxy_remove_header_map_value(type, np, nl) {
    const name = str(np, nl);
    maps[type] = pairsOf(type).filter(([n]) => n !== name);
    return OK;
  },
  proxy_get_buffer_bytes(type, start, max, outPtr, outSize) {
    const buf = buffers[type];
    if (!buf) return NOT_FOUND;
    return give(buf.subarray(start, Math.min(buf.length, start + (max >>> 0))), outPtr, outSize);
  },
  proxy_set_buffer_bytes(type, start, size, ptr, len) {
    const buf = buffers[type] || Buffer.alloc(0);
    const data = Buffer.from(u8().subarray(ptr, ptr + len));
    buffers[type] = Buffer.concat([buf.subarray(0, start), data, buf.subarray(start + size)]);
    return OK;
  },
  proxy_define_metric(type, ptr, len, out) {
    dv().setUint32(out, ++metricIds, true);
    return OK;
  },
  proxy_increment_metric() { return OK; },
  proxy_record_metric() { return OK; },
  proxy_get_shared_data() { return NOT_FOUND; },
  proxy_set_shared_data() { return OK; },
  proxy_continue_stream() { return OK; },
  proxy_close_stream() { return OK; },
  proxy_set_effective_context() { return OK; },
  proxy_send_local_response(status, dp, dl, bp, bl, hp, hl, grpc) {
    localReplies.push([status, str(bp, bl)]);
    return OK;
  },
  proxy_http_call() { throw new Error('proxy_http_call is not on the measured path'); },
  proxy_done() { return OK; },
  proxy_get_status() { return NOT_FOUND; },
};
let metricIds = 0;

const wasi = {
  random_get(ptr, len) { crypto.randomFillSync(u8(), ptr, len); return 0; },
  environ_sizes_get(countOut, sizeOut) {
    dv().setUint32(countOut, 0, true);
    dv().setUint32(sizeOut, 0, true);
    return 0;
  },
  environ_get() { return 0; },
  clock_time_get(id, precision, out) {
    dv().setBigUint64(out, process.hrtime.bigint(), true);
    return 0;
  },
  fd_write(fd, iovs, iovsLen, nwritten) {
    const view = dv();
    let total = 0;
    for (let i = 0; i < iovsLen; i++) {
      const p = view.getUint32(iovs + i * 8, true), l = view.getUint32(iovs + i * 8 + 4, true);
      process.stderr.write(dec.decode(u8().subarray(p, p + l)));
      total += l;
    }
    view.setUint32(nwritten, total, true);
    return 0;
  },
  proc_exit(code) { throw new Error(`proc_exit(${code})`); },
};

function stubbed(wasmModule) {
  const out = {};
  for (const { name, kind } of WebAssembly.Module.imports(wasmModule)) {
    if (kind !== 'function') continue;
    const mod = name.startsWith('proxy_') ? env : wasi;
    const fn = mod[name] || (() => { throw new Error(`unexpected host call ${name}`); });
    out[name] = COUNT ? (...a) => { calls.set(name, (calls.get(name) || 0) + 1); return fn(...a); } : fn;
  }
  return out;
}

const wasmModule = new WebAssembly.Module(fs.readFileSync(WASM));
const imports = stubbed(wasmModule);
const envImports = {}, wasiImports = {};
for (const { module: m, name } of WebAssembly.Module.imports(wasmModule)) {
  (m === 'env' ? envImports : wasiImports)[name] = imports[name];
}
instance = new WebAssembly.Instance(wasmModule, { env: envImports, wasi_snapshot_preview1: wasiImports });
memory = instance.exports.memory;
const x = instance.exports;

if (x._initialize) x._initialize();
x.proxy_on_context_create(1, 0);
if (!x.proxy_on_vm_start(1, buffers[6].length)) throw new Error('vm start refused');
if (!x.proxy_on_configure(1, buffers[7].length)) throw new Error('configuration refused');

let nextContext = 2;
const reqTemplate = requestHeaders();
const ansTemplate = answerHeaders();
function oneRequest() {
  const ctx = nextContext++;
  maps[0] = reqTemplate;
  buffers[0] = BODY;
  x.proxy_on_context_create(ctx, 1);
  let a1 = x.proxy_on_request_headers(ctx, reqTemplate.length, BODY.length ? 0 : 1);
  // With a body the headers wait for it (StopIteration), then the body goes on signed.
  if (BODY.length && a1 === 1) a1 = x.proxy_on_request_body(ctx, BODY.length, 1);
  maps[2] = ansTemplate;
  buffers[1] = ANSWER_BODY;
  const a2 = x.proxy_on_response_headers(ctx, ansTemplate.length, 0);
  const a3 = x.proxy_on_response_body(ctx, ANSWER_BODY.length, 1);
  x.proxy_on_done(ctx);
  x.proxy_on_log(ctx);
  x.proxy_on_delete(ctx);
  // An event's answer waits for its body (the proxy response is decoded whole).
  return a1 | (PAYLOAD === 'passthrough' ? a2 : 0) | a3;
}

// Check once that the path is the one meant: the request map rewritten and signed.
if (oneRequest() !== 0) throw new Error('a callback paused: not the measured path');
const auth = signed && signed.find(([n]) => n === 'authorization');
if (!auth || !auth[1].startsWith('AWS4-HMAC-SHA256 ')) {
  console.error('request map after the filter:', signed, 'local replies:', localReplies);
  throw new Error('the request was not rewritten into a signed Invoke');
}
if (localReplies.length) throw new Error(`local replies sent: ${JSON.stringify(localReplies)}`);
if (COUNT) console.log(`signed: ${auth[1]}`);
if (COUNT) console.log(`rewritten request: ${signed.map(([n, v]) => `${n}: ${v.length > 60 ? v.slice(0, 60) + '…' : v}`).join(' | ')}`);
if (COUNT) console.log(`answer headers: ${pairsOf(2).map(([n, v]) => `${n}: ${v}`).join(' | ')}`);

if (COUNT) {
  calls.clear();
  // A multiple of the filter's histogram batch (1,024 values, handed over when full or on
  // the root's tick, which this host never fires): the deferred record_metric calls count.
  const n = 4096;
  for (let i = 0; i < n; i++) oneRequest();
  const rows = [...calls].sort((a, b) => b[1] - a[1]);
  let total = 0;
  for (const [name, c] of rows) { total += c; console.log(`${(c / n).toFixed(2).padStart(6)}  ${name}`); }
  console.log(`${(total / n).toFixed(2).padStart(6)}  host calls per request`);
  process.exit(0);
}

for (let i = 0; i < WARMUP; i++) oneRequest(); // warm up (TurboFan)
// Wall time and CPU time (user + system: less disturbed by other load on the machine).
const wall = [], cpu = [];
for (let r = 0; r < ROUNDS; r++) {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  for (let i = 0; i < REQUESTS; i++) oneRequest();
  const c = process.cpuUsage(c0);
  wall.push(Number(process.hrtime.bigint() - t0) / REQUESTS);
  cpu.push(((c.user + c.system) * 1000) / REQUESTS);
}
const line = (name, v) => {
  v.sort((a, b) => a - b);
  console.log(`${name} ns/request over ${REQUESTS} requests x ${ROUNDS}: min ${v[0].toFixed(0)} median ${v[ROUNDS >> 1].toFixed(0)}`);
};
line('wall', wall);
line('cpu ', cpu);
console.log(`wasm memory: ${memory.buffer.byteLength} bytes`);

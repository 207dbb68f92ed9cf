'use strict';
// One load-client process of bench/fanout.py: COUNT WebSocket connections speaking WAMP JSON.
//   node client.js URL COUNT TOKENS_FILE|- CONNECT_RATE [publish RATE]
// Each connection joins realm "reactive" (ticket = one line of TOKENS_FILE, or anonymous with "-"),
// subscribes time.tic and records, for events whose payload ts lies in the window, the latency
// (receive time - ts) in a 0.1 ms histogram and the seqs seen. "publish RATE" makes connection 0 a
// publisher of time.tic at RATE/s instead (for the bare router, which has no clock).
// stdin: one JSON line {"t0": ms, "t1": ms, "grace": ms}; stdout: JSON lines "ready" and "result".
const WebSocket = require('ws');
const { performance } = require('perf_hooks');
const fs = require('fs');
const readline = require('readline');

const [url, countText, tokensFile, rateText, mode, publishRateText] = process.argv.slice(2);
const count = parseInt(countText, 10);
const connectRate = parseInt(rateText, 10);
const tokens = tokensFile === '-' ? null : fs.readFileSync(tokensFile, 'utf8').split('\n').filter(Boolean);
const publishRate = mode === 'publish' ? parseFloat(publishRateText) : 0;

const BUCKET = 0.1;                       // ms per histogram bucket
const hist = new Uint32Array(600001);     // up to 60 s, last bucket = overflow
let maxLatency = 0;
let window = null;
let inWindow = 0;
let late = 0;
let subscribed = 0;
let failed = 0;
let closed = 0;
const seqs = new Set();
const now = () => performance.timeOrigin + performance.now();

function emit(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function onEvent(payload) {
  if (!window || !payload || typeof payload.ts !== 'number') return;
  if (payload.ts < window.t0 || payload.ts > window.t1) return;
  const latency = now() - payload.ts;
  if (now() > window.t1 + window.grace) { late++; return; }
  inWindow++;
  seqs.add(payload.seq);
  const bucket = Math.min(hist.length - 1, Math.max(0, Math.floor(latency / BUCKET)));
  hist[bucket]++;
  if (latency > maxLatency) maxLatency = latency;
}

function open(index) {
  const ws = new WebSocket(url, ['wamp.2.json'], { perMessageDeflate: false, handshakeTimeout: 30000 });
  let request = 1;
  ws.on('open', () => {
    const details = { roles: { subscriber: {}, publisher: {} } };
    if (tokens) {
      details.authmethods = ['ticket'];
    } else {
      details.authmethods = ['anonymous'];
    }
    ws.send(JSON.stringify([1, 'reactive', details]));
  });
  ws.on('message', (data) => {
    const msg = JSON.parse(data);
    switch (msg[0]) {
      case 36: onEvent(msg[4] && msg[4][0]); break;                                    // EVENT
      case 4: ws.send(JSON.stringify([5, tokens[index % tokens.length], {}])); break;   // CHALLENGE
      case 2:                                                                           // WELCOME
        if (publishRate > 0 && index === 0) { startPublishing(ws); subscribed++; maybeReady(); }
        else ws.send(JSON.stringify([32, request++, {}, 'time.tic']));
        break;
      case 33: subscribed++; maybeReady(); break;                                      // SUBSCRIBED
      case 3: failed++; emit({ type: 'abort', reason: msg[2] }); ws.close(); break;    // ABORT
      default: break;
    }
  });
  ws.on('error', () => { failed++; });
  ws.on('close', () => { closed++; });
}

function startPublishing(ws) {
  let seq = Date.now();
  let request = 1000;
  setInterval(() => {
    seq = Math.max(seq + 1, Date.now());
    const ts = Date.now();
    ws.send(JSON.stringify([16, request++, {}, 'time.tic', [{ value: new Date(ts).toISOString().slice(11, 19), seq, ts }]]));
  }, 1000 / publishRate);
}

let readySent = false;
function maybeReady() {
  if (!readySent && subscribed === count) { readySent = true; emit({ type: 'ready', subscribed, failed }); }
}

let opened = 0;
const batch = Math.max(1, Math.round(connectRate / 20));
const opener = setInterval(() => {
  for (let i = 0; i < batch && opened < count; i++) open(opened++);
  if (opened >= count) clearInterval(opener);
}, 50);
setInterval(() => { if (!readySent) emit({ type: 'progress', subscribed, failed, closed }); }, 2000);

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  window = JSON.parse(line);
  setTimeout(() => {
    const sparse = {};
    for (let i = 0; i < hist.length; i++) if (hist[i]) sparse[i] = hist[i];
    const text = JSON.stringify({ type: 'result', subscribed, failed, closed, in_window: inWindow, late,
                                  max_ms: maxLatency, bucket_ms: BUCKET, hist: sparse, seqs: Array.from(seqs) });
    process.stdout.write(text + '\n', () => process.exit(0));  // exit only once a pipe took the whole line
  }, Math.max(0, window.t1 + window.grace - Date.now()) + 50);
});

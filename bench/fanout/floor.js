'use strict';
// The floor of bench/fanout.py: a minimal Node ws broadcast server. It speaks just enough WAMP JSON for
// the load clients (HELLO -> WELCOME, SUBSCRIBE -> SUBSCRIBED), and at RATE/s serialises one time.tic
// EVENT once and writes it to every subscribed socket. No auth, no routing, no per-client work.
//   node floor.js PORT RATE
const { WebSocketServer } = require('ws');

const port = parseInt(process.argv[2], 10);
const rate = parseFloat(process.argv[3]);
const subscribers = new Set();
let session = 1;
let publication = 1;
let seq = Date.now();

const server = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096, perMessageDeflate: false,
                                     handleProtocols: () => 'wamp.2.json' });
server.on('connection', (ws) => {
  ws.on('message', (data) => {
    const msg = JSON.parse(data);
    if (msg[0] === 1) ws.send(JSON.stringify([2, session++, { roles: { broker: {} }, authmethod: 'anonymous' }]));
    else if (msg[0] === 32) { subscribers.add(ws); ws.send(JSON.stringify([33, msg[1], 1])); }
  });
  ws.on('close', () => subscribers.delete(ws));
  ws.on('error', () => subscribers.delete(ws));
});
server.on('listening', () => process.stdout.write(JSON.stringify({ type: 'listening', port }) + '\n'));

setInterval(() => {
  const ts = Date.now();
  seq = Math.max(seq + 1, ts);
  const text = JSON.stringify([36, 1, publication++, {}, [{ value: new Date(ts).toISOString().slice(11, 19), seq, ts }]]);
  for (const ws of subscribers) ws.send(text);
}, 1000 / rate);

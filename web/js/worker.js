// The SharedWorker: one WAMP connection for every tab of this browser
// profile and origin. Each tab is a MessagePort client of one Engine.
// A tab is dropped when it says goodbye (pagehide) or, for tabs that crash or
// are killed, when the Web Lock the tab holds for its whole life is released.
import autobahn from "./autobahn.js";
import {Engine, websocketUrl} from "./engine.js";

const engine = new Engine({autobahn, url: websocketUrl(self.location)});

self.addEventListener("connect", (event) => {
  const port = event.ports[0];
  const client = {post: (msg) => port.postMessage(msg), closed: false};
  const drop = () => {
    if (client.closed) return;
    client.closed = true;
    engine.detach(client);
    port.close();
  };
  port.addEventListener("message", (message) => {
    const msg = message.data || {};
    if (msg.op === "hello") {
      if (client.closed) return;
      if (msg.lock && self.navigator.locks) self.navigator.locks.request(msg.lock, drop);
    } else if (msg.op === "bye") {
      drop();
    } else if (!client.closed) {
      engine.handle(client, msg);
    }
  });
  port.addEventListener("close", drop);   // where MessagePort close events exist
  port.start();
  engine.attach(client);
});

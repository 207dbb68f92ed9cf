// The client library the pages use:
//
//   const hub = createHub();               // SharedWorker transport, or a direct connection as fallback
//   hub.onStatus((status) => ...);         // {state: "connecting" | "online" | "offline" | "signed_out", ...}
//                                          // offline: retryAt (ms); signed_out by the hub: reason {error, message}
//   hub.connect();
//   const stop = hub.state("counter.changed", "counter.get", (state) => ..., (error) => ...);
//   // end-to-end encrypted values arrive opened; one that fails is an error with
//   // error.error === "reactive.error.e2e.refused" and error.kwargs.code saying why
//   const result = await hub.call("counter.click", [], {n: 1});
//   await hub.login(username, password);  await hub.logout();
//   const series = hub.series("iot.serial.reader", {minutes: 10, onChange: (points, change) => ...});
//   series.points(); series.stop();
//   const stop = hub.events("app.shop.orders", (args, kwargs, details) => ..., {since: "now", onGap: () => ...});
//
// state(): subscribe first, then call the .get RPC; deliver only states with
// a higher seq than the last one delivered; re-sync after every reconnect.
// events(): every event of a history topic once, in order, across any reconnect (see the method).
import {EventCursor} from "./cursor.js";
import {newer} from "./engine.js";

const CHANNEL = "reactive-hub";
let counter = 0;

function randomId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now()}-${Math.random()}-${++counter}`;
}

// A tab's link to the SharedWorker: post() and a message handler; hello/bye manage its life there.
function sharedChannel(workerUrl, onMessage, onFail) {
  const worker = new SharedWorker(workerUrl, {type: "module", name: CHANNEL});
  worker.addEventListener("error", onFail);   // the worker script could not start: fall back
  const port = worker.port;
  port.addEventListener("message", (event) => onMessage(event.data));
  port.start();
  const lock = `${CHANNEL}-tab-${randomId()}`;
  const hello = () => port.postMessage({op: "hello", lock});
  if (navigator.locks) {
    // held until this tab goes away; the worker waits on it to notice a crashed or killed tab
    navigator.locks.request(lock, () => { hello(); return new Promise(() => {}); });
  } else {
    hello();
  }
  return {
    mode: "shared",
    post: (msg) => port.postMessage(msg),
    close: () => { port.postMessage({op: "bye"}); port.close(); },
  };
}

// The fallback: this tab runs its own engine; tabs tell each other about sign-out and sign-in.
function directChannel(onMessage) {
  const client = {post: (msg) => queueMicrotask(() => onMessage(msg))};
  const pending = [];
  let engine = null;
  const broadcast = typeof BroadcastChannel === "function" ? new BroadcastChannel(CHANNEL) : null;
  import("./autobahn.js").then(async ({default: autobahn}) => {
    const {Engine, websocketUrl} = await import("./engine.js");
    engine = new Engine({autobahn, url: websocketUrl(location)});
    engine.attach(client);
    for (const msg of pending.splice(0)) engine.handle(client, msg);
  });
  const handle = (msg) => (engine ? engine.handle(client, msg) : pending.push(msg));
  if (broadcast) {
    broadcast.onmessage = (event) => {
      if (event.data === "signed_out" && engine) engine.signOut();
      if (event.data === "signed_in") handle({op: "connect"});
    };
  }
  return {
    mode: "direct",
    post: (msg) => {
      handle(msg);
      if (broadcast && msg.op === "logout") broadcast.postMessage("signed_out");
      if (broadcast && msg.op === "connect" && msg.signedIn) broadcast.postMessage("signed_in");
    },
    close: () => { if (engine) engine.stop(); if (broadcast) broadcast.close(); },
  };
}

export function sharedWorkerSupported() {
  return typeof SharedWorker === "function";
}

export class Hub {
  // tokenUrl/logoutUrl/csrfToken: where the engine gets its tokens and ends the login; the defaults are the hub's
  // own /auth endpoints. A Django site with components.django_hub logs in once with
  // {tokenUrl: "/hub/token", logoutUrl: "/accounts/logout/", csrfToken: "{{ csrf_token }}"} (sent as X-CSRFToken).
  // url: the hub's WebSocket (default: this page's origin + /ws); a page on another origin (Django's runserver in
  // development) names the hub, e.g. "ws://127.0.0.1:8080/ws", and the hub lists the page's origin in ALLOWED_ORIGINS.
  constructor({transport = "auto", workerUrl = "/js/worker.js", loginUrl = "/auth/login", tokenUrl = "/auth/token",
               logoutUrl = "/auth/logout", csrfToken = null, url = null} = {}) {
    this.loginUrl = loginUrl;
    this.endpoints = {tokenUrl, logoutUrl, headers: csrfToken ? {"X-CSRFToken": csrfToken} : {}, ...(url ? {url} : {})};
    this.status = {state: "idle"};
    this.statusListeners = new Set();
    this.watchers = new Map();     // topic -> {getProc, listeners: Set<{onValue, onUnavailable}>, latest, unavailable}
    this.seriesListeners = new Map();   // source -> Set<series listener> (see series())
    this.eventListeners = new Map();    // key -> events listener (see events())
    this.nextKey = 1;
    this.pending = new Map();      // call id -> {resolve, reject}
    this.nextId = 1;
    this.connected = false;
    this.heard = false;
    const useShared = transport === "shared" || (transport === "auto" && sharedWorkerSupported());
    this.channel = null;
    if (useShared) {
      try {
        this.channel = sharedChannel(workerUrl, (msg) => this.receive(msg), () => this.fallBack());
      } catch (err) {
        this.channel = null;
      }
    }
    if (!this.channel) this.channel = directChannel((msg) => this.receive(msg));
    this.channel.post({op: "configure", ...this.endpoints});
    this.mode = this.channel.mode;
    globalThis.addEventListener?.("pagehide", () => this.channel.close());
    globalThis.addEventListener?.("pageshow", (event) => {
      // back from the back/forward cache: the old channel said goodbye, open a new one
      if (event.persisted) this.reopen(this.mode === "shared" ? sharedChannel(workerUrl, (msg) => this.receive(msg),
                                                                               () => this.fallBack())
                                                                : directChannel((msg) => this.receive(msg)));
    });
  }

  fallBack() {
    if (this.mode !== "shared" || this.heard) return;
    this.reopen(directChannel((msg) => this.receive(msg)));
  }

  // Move to a new channel and tell it everything the old one knew: the connection wish and every followed topic.
  reopen(channel) {
    this.channel = channel;
    this.mode = channel.mode;
    channel.post({op: "configure", ...this.endpoints});
    if (this.connected) channel.post({op: "connect"});
    for (const [topic, watcher] of this.watchers) {
      for (let i = 0; i < watcher.listeners.size; i++) channel.post({op: "watch", topic, getProc: watcher.getProc});
    }
    for (const [topic, listeners] of this.seriesListeners) {
      for (const listener of listeners) channel.post({op: "series", topic, minutes: listener.minutes, key: listener.key});
    }
    for (const [key, listener] of this.eventListeners) {
      channel.post({op: "follow", topic: listener.topic, key, since: listener.cursor.snapshot()});
    }
  }

  receive(msg) {
    if (!msg || typeof msg !== "object") return;
    this.heard = true;
    if (msg.op === "status") {
      this.status = msg.status;
      if (msg.status.state === "signed_out") {
        for (const watcher of this.watchers.values()) { watcher.latest = null; watcher.unavailable = null; }
        for (const listeners of this.seriesListeners.values()) {
          for (const listener of listeners) listener.merge([], true);
        }
      }
      for (const listener of this.statusListeners) listener(msg.status);
    } else if (msg.op === "state") {
      const watcher = this.watchers.get(msg.topic);
      if (!watcher || !newer(watcher.latest, msg.state)) return;
      watcher.latest = msg.state;
      watcher.unavailable = null;
      for (const listener of watcher.listeners) listener.onValue(msg.state);
    } else if (msg.op === "unavailable") {
      const watcher = this.watchers.get(msg.topic);
      if (!watcher) return;
      watcher.unavailable = msg.error;
      for (const listener of watcher.listeners) listener.onUnavailable?.(msg.error);
    } else if (msg.op === "points" || msg.op === "series_error") {
      for (const listener of this.seriesListeners.get(msg.topic) || []) {
        if (msg.key !== undefined && msg.key !== listener.key) continue;
        if (msg.op === "points") listener.merge(Array.isArray(msg.points) ? msg.points : [], msg.reset === true);
        else listener.onError?.(msg.error);
      }
    } else if (msg.op === "events" || msg.op === "gap" || msg.op === "events_error") {
      this.eventListeners.get(msg.key)?.receive(msg);
    } else if (msg.op === "result") {
      const waiter = this.pending.get(msg.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      if (msg.error) waiter.reject(Object.assign(new Error(msg.error.message), msg.error));
      else waiter.resolve(msg.value);
    }
  }

  request(msg) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {resolve, reject});
      this.channel.post({...msg, id});
    });
  }

  // Start (or resume) the connection; idempotent.
  connect() {
    this.connected = true;
    this.channel.post({op: "connect"});
  }

  // Call an RPC; rejects with an Error carrying {error, args, kwargs, message} (error is the WAMP error URI).
  call(proc, args = [], kwargs = {}) {
    return this.request({op: "call", proc, args, kwargs});
  }

  // Follow a stateful topic: onValue(state) with strictly increasing seq; onUnavailable(error) when it cannot be had.
  // Returns a function that stops following.
  state(topic, getProc, onValue, onUnavailable) {
    let watcher = this.watchers.get(topic);
    if (!watcher) {
      watcher = {getProc, listeners: new Set(), latest: null, unavailable: null};
      this.watchers.set(topic, watcher);
    }
    const listener = {onValue, onUnavailable};
    watcher.listeners.add(listener);
    if (watcher.unavailable) onUnavailable?.(watcher.unavailable);
    else if (watcher.latest) onValue(watcher.latest);
    this.channel.post({op: "watch", topic, getProc});
    return () => {
      if (!watcher.listeners.delete(listener)) return;
      this.channel.post({op: "unwatch", topic});
      if (watcher.listeners.size === 0) this.watchers.delete(topic);
    };
  }

  /**
   * Follow the recent history of an IoT source (`iot.serial.reader`, `iot.odata.value`, `iot.device.<name>`):
   * first the stored states of the last `minutes` (iot.history, page by page), then every live event. After every
   * reconnect the states published meanwhile are fetched with iot.history(source, after_seq=<last seq seen>), so
   * nothing is missed: the points are in ascending seq order, each seq once, none older than the window. When the
   * hub says the missing states were pruned, the window is loaded again and onChange gets `reset: true`.
   * Through the SharedWorker every tab of the browser shares one subscription and one window per source.
   *
   *   const series = hub.series("iot.serial.reader", {
   *     minutes: 10,
   *     onChange: (points, {added, reset}) => draw(points),   // points: [{value, seq, ts, ...}], oldest first
   *     onError: (error) => ...,   // {error: URI, message}: history not on this hub, not allowed, ...
   *   });
   *   series.points();   // the current window (points older than `minutes` dropped)
   *   series.stop();     // unsubscribe (idempotent)
   *
   * @param {string} source the source's topic URI
   * @param {{minutes?: number, onChange?: Function, onError?: Function}} options
   * @returns {{points: () => object[], lastSeq: () => (number|null), stop: () => void}}
   */
  series(source, {minutes = 10, onChange, onError} = {}) {
    const key = this.nextKey++;
    let points = [];
    let lastSeq = null;
    const trim = () => {
      const cutoff = Date.now() - minutes * 60000;
      let old = 0;
      while (old < points.length && points[old].ts < cutoff) old++;
      if (old > 0) points.splice(0, old);
    };
    const listener = {
      key, minutes, onError,
      merge: (incoming, reset) => {
        if (reset) { points = []; lastSeq = null; }
        const added = [];
        for (const point of incoming) {
          if (!point || typeof point.seq !== "number" || (lastSeq !== null && point.seq <= lastSeq)) continue;
          lastSeq = point.seq;
          points.push(point);
          added.push(point);
        }
        trim();
        if (reset || added.length) onChange?.(points.slice(), {added, reset});
      },
    };
    let listeners = this.seriesListeners.get(source);
    if (!listeners) this.seriesListeners.set(source, listeners = new Set());
    listeners.add(listener);
    this.channel.post({op: "series", topic: source, minutes, key});
    return {
      points: () => { trim(); return points.slice(); },
      lastSeq: () => lastSeq,
      stop: () => {
        if (!listeners.delete(listener)) return;
        this.channel.post({op: "unseries", topic: source, minutes});
        if (listeners.size === 0 && this.seriesListeners.get(source) === listeners) this.seriesListeners.delete(source);
      },
    };
  }

  /**
   * Follow a topic with stored history (HISTORY_TOPICS: `app.*`, `iot.device.*`, `iot.serial.reader`,
   * `iot.odata.value`): `handler(args, kwargs, details)` gets every event once, in the order the hub stored them,
   * also across reconnects of any length (a router restart, another node): after each one the events published
   * meanwhile are read from hub.history and passed on (`details.replayed: true`) before live ones. When the hub
   * pruned events this follower had not got yet, `onGap({topic})` is called and the next event has `gap: true`.
   *
   *   const stop = hub.events("app.shop.orders", (args, kwargs, {publication, ts, replayed, gap}) => ..., {
   *     since: "now",          // "now" (default), "start" (every kept event) or a position given earlier
   *     onGap: ({topic}) => ...,
   *     onError: (error) => ...,   // {error: URI, message}: no history for the topic, not allowed, ...
   *   });
   *   stop();   // idempotent
   *
   * An event the hub could not store (its database down) comes live with `publication: null`.
   *
   * @param {string} topic the topic (not its hub.feed. form)
   * @param {Function} handler (args, kwargs, details) => void
   * @param {{since?: ("now"|"start"|number), onGap?: Function, onError?: Function}} options
   * @returns {() => void} stops following
   */
  events(topic, handler, {since = "now", onGap, onError} = {}) {
    const key = `e${this.nextKey++}`;
    const listener = {
      topic,
      cursor: new EventCursor(since),
      receive: (msg) => {
        if (msg.op === "gap") onGap?.({topic});
        else if (msg.op === "events_error") onError?.(msg.error);
        if (msg.op !== "events") return;
        if (msg.start !== undefined) listener.cursor.begin(msg.start);
        for (const event of Array.isArray(msg.events) ? msg.events : []) {
          const details = event.details || {};
          // the engine skips what it passed on before; this cursor skips what a former channel passed on
          if (details.publication !== null && !listener.cursor.accept(details.publication)) continue;
          try {
            handler(event.args, event.kwargs, details);
          } catch (err) {
            setTimeout(() => { throw err; });   // reported, and the batch's other events still delivered
          }
        }
      },
    };
    this.eventListeners.set(key, listener);
    this.channel.post({op: "follow", topic, key, since: listener.cursor.snapshot()});
    return () => {
      if (!this.eventListeners.delete(key)) return;
      this.channel.post({op: "unfollow", key});
    };
  }

  // Listen to connection status changes; the listener gets the current status at once. Returns an unsubscribe function.
  onStatus(listener) {
    this.statusListeners.add(listener);
    listener(this.status);
    return () => this.statusListeners.delete(listener);
  }

  // POST /auth/login; on success every tab of this browser connects. Resolves {ok, status, error, message, retryAfter}.
  async login(username, password) {
    let response;
    try {
      response = await fetch(this.loginUrl, {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({username, password})});
    } catch (err) {
      return {ok: false, status: 0, message: "the hub cannot be reached"};
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      return {ok: false, status: response.status, error: body.error, message: body.message || "login failed",
              retryAfter: Number(response.headers.get("Retry-After")) || null};
    }
    this.connected = true;
    this.channel.post({op: "connect", signedIn: true});
    return {ok: true, status: response.status, user: body};
  }

  // End the login session; every tab of this browser goes to the login form.
  logout() {
    return this.request({op: "logout"});
  }

  // Diagnostics of the shared connection: {clients, topics: {topic: refs}, status, e2e: {enabled, kids, ...}}.
  info() {
    return this.request({op: "info"});
  }

  // Seal `value` for topic/seq with this user's current end-to-end key (the key never leaves the engine).
  seal(topic, seq, value) {
    return this.request({op: "seal", topic, seq, value});
  }
}

export function createHub(options) {
  return new Hub(options);
}

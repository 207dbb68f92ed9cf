// Type declarations of hub.js, the reactive hub's browser client (written by hand; keep in step with hub.js:
// tests/web/test_npm_package.py checks that every export of hub.js is declared here).

export type HubState = "idle" | "connecting" | "online" | "offline" | "signed_out";

export interface HubError {
  /** the WAMP error URI, e.g. "reactive.error.e2e.refused" */
  error: string;
  message?: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
}

export interface HubStatus {
  state: HubState;
  /** offline: when the next attempt starts (ms since the epoch) */
  retryAt?: number;
  /** signed_out by the hub: why */
  reason?: HubError;
  [extra: string]: unknown;
}

export interface HubOptions {
  /** "auto" (SharedWorker when the browser has it), "shared" or "direct" */
  transport?: "auto" | "shared" | "direct";
  /** the SharedWorker script, same origin as the page (default "/js/worker.js") */
  workerUrl?: string;
  loginUrl?: string;
  /** same-origin path of the token endpoint (default "/auth/token"; Django: "/hub/token") */
  tokenUrl?: string;
  logoutUrl?: string;
  /** sent as X-CSRFToken to tokenUrl and logoutUrl */
  csrfToken?: string | null;
  /** the hub's WebSocket when the page is on another origin, e.g. "ws://127.0.0.1:8080/ws" */
  url?: string | null;
}

export interface State<T = unknown> {
  value: T;
  seq: number;
  ts: number;
  [extra: string]: unknown;
}

export interface Point {
  value: unknown;
  seq: number;
  ts: number;
  [extra: string]: unknown;
}

export interface SeriesOptions {
  minutes?: number;
  onChange?: (points: Point[], change: {added: Point[]; reset: boolean}) => void;
  onError?: (error: HubError) => void;
}

export interface Series {
  points(): Point[];
  lastSeq(): number | null;
  stop(): void;
}

export interface EventDetails {
  /** the topic followed (not its hub.feed. form) */
  topic: string;
  /** the event's position in the hub's one sequence; null when the hub could not store it */
  publication: number | null;
  /** when the hub stored it (ms since the epoch) */
  ts: number | null;
  /** read from hub.history after a (re)connect rather than received live */
  replayed: boolean;
  /** the first event after events this follower never got were pruned */
  gap: boolean;
}

export interface EventsOptions {
  /** "now" (default), "start" (every kept event) or a position given earlier (what followed it) */
  since?: "now" | "start" | number;
  /** called once each time the hub says events this follower had not got were pruned */
  onGap?: (info: {topic: string}) => void;
  onError?: (error: HubError) => void;
}

export interface LoginResult {
  ok: boolean;
  status: number;
  error?: string;
  message?: string;
  retryAfter?: number | null;
  user?: unknown;
}

export declare function sharedWorkerSupported(): boolean;

export declare class Hub {
  constructor(options?: HubOptions);
  readonly mode: "shared" | "direct";
  status: HubStatus;
  /** Start (or resume) the connection; idempotent. */
  connect(): void;
  /** Call an RPC; rejects with an Error carrying {error, args, kwargs, message}. */
  call<T = unknown>(proc: string, args?: unknown[], kwargs?: Record<string, unknown>): Promise<T>;
  /** Follow a stateful topic; returns a function that stops following. */
  state<T = unknown>(topic: string, getProc: string, onValue: (state: State<T>) => void,
                     onUnavailable?: (error: HubError) => void): () => void;
  /** A live window of a source's points. */
  series(source: string, options?: SeriesOptions): Series;
  /** Every event of a history topic once, in order, across reconnects; returns a function that stops. */
  events(topic: string, handler: (args: unknown[], kwargs: Record<string, unknown>, details: EventDetails) => void,
         options?: EventsOptions): () => void;
  /** Listen to status changes (the current status at once); returns an unsubscribe function. */
  onStatus(listener: (status: HubStatus) => void): () => void;
  login(username: string, password: string): Promise<LoginResult>;
  logout(): Promise<unknown>;
  info(): Promise<Record<string, unknown>>;
  seal(topic: string, seq: number, value: unknown): Promise<unknown>;
}

export declare function createHub(options?: HubOptions): Hub;

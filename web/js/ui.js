// DOM helpers shared by the pages. Everything user-supplied goes in as text
// (textContent / attributes), never as HTML.
import {REFUSED} from "./e2e.js";
import {createHub} from "./hub.js";

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

export function statusText(status, now = Date.now()) {
  switch (status.state) {
    case "online": return `Online as ${status.user ? status.user.username : "?"}`;
    case "connecting": return "Connecting…";
    case "offline": {
      const seconds = Math.max(0, Math.ceil(((status.retryAt || now) - now) / 1000));
      return `Offline, retrying in ${seconds} s`;
    }
    case "signed_out": return "Signed out";
    default: return "Starting…";
  }
}

// The connection status line, with a live countdown while offline.
export function mountStatus(hub, element) {
  let timer = null;
  hub.onStatus((status) => {
    element.dataset.state = status.state;
    element.textContent = statusText(status);
    if (timer !== null) clearInterval(timer);
    timer = null;
    if (status.state === "offline") {
      timer = setInterval(() => { element.textContent = statusText(status); }, 250);
    }
  });
}

const REVOKED = "reactive.error.auth.revoked";

// Why the hub signed the user out (status.reason of a signed_out status), as the login page says it; "" for none.
export function signOutText(reason) {
  if (!reason || reason.error !== REVOKED) return "";
  return "You were signed out: your account changed (deactivated, new password or rights) or you logged out " +
    "elsewhere. Log in again to go on.";
}

// The login form, built into `container`; shown while signed out, with the reason when the hub signed the user out.
export function mountLogin(hub, container) {
  const reason = el("p", {id: "login-reason", class: "notice", role: "status", hidden: true});
  const error = el("p", {id: "login-error", class: "error", role: "alert"});
  const username = el("input", {id: "username", name: "username", autocomplete: "username", required: true});
  const password = el("input", {id: "password", name: "password", type: "password",
                                autocomplete: "current-password", required: true});
  const button = el("button", {type: "submit", text: "Log in"});
  const form = el("form", {id: "login-form"},
    el("h2", {text: "Log in"}), reason,
    el("label", {for: "username", text: "Username"}), username,
    el("label", {for: "password", text: "Password"}), password,
    button, error);
  container.replaceChildren(form);
  hub.onStatus((status) => {
    if (status.state !== "signed_out") return;
    reason.textContent = signOutText(status.reason);
    reason.hidden = !reason.textContent;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    error.textContent = "";
    const result = await hub.login(username.value, password.value);
    button.disabled = false;
    if (result.ok) {
      password.value = "";
      reason.textContent = "";
      reason.hidden = true;
    } else {
      error.textContent = result.retryAfter ? `${result.message} (wait ${result.retryAfter} s)` : result.message;
      password.select();
    }
  });
  return form;
}

// Show the login form while signed out and `main` otherwise; returns the last signed-in user via callback.
export function mountSignedInView(hub, {login, main, onUser}) {
  let lastUser = null;
  hub.onStatus((status) => {
    const signedOut = status.state === "signed_out";
    login.hidden = !signedOut;
    main.hidden = signedOut || (status.state !== "online" && !lastUser);
    if (signedOut) {
      lastUser = null;
      const field = login.querySelector("input");
      if (field && !login.contains(document.activeElement)) field.focus();
    }
    if (status.state === "online" && status.user) {
      const changed = !lastUser || lastUser.username !== status.user.username || lastUser.role !== status.user.role;
      lastUser = status.user;
      if (changed && onUser) onUser(status.user);
    }
  });
}

const REFUSAL_TEXT = {
  auth_failed: "it failed its integrity check",
  unknown_key: "there is no key to open it",
  not_encrypted: "it arrived unencrypted",
  replayed: "it was replayed",
  nonce_reuse: "its sender reused a nonce",
  unsupported_version: "its format is unknown",
  unsupported_algorithm: "its format is unknown",
  no_webcrypto: "this browser cannot decrypt here (HTTPS needed)",
};

// The panel text for an end-to-end encrypted value that was refused (kwargs.code says why).
export function refusalText(error) {
  const code = error && error.kwargs && error.kwargs.code;
  return `Refused: ${REFUSAL_TEXT[code] || "it is malformed"}`;
}

// Show a topic's state in `element`: text from format(state), a stale mark, an end-to-end mark, "unavailable",
// or, for an encrypted value that failed to open, "Refused: ..." (data-state="refused", data-code=why).
// `also` ({onValue, onUnavailable}) runs after the element is updated, on the same single subscription.
export function bindState(hub, topic, getProc, element, format = (state) => state.value, also = {}) {
  const panel = element.parentElement;
  const mark = panel && panel.querySelector(".stale-mark");
  const lock = panel && panel.querySelector(".lock-mark");
  return hub.state(topic, getProc, (state) => {
    const shown = format(state);
    element.textContent = shown === null || shown === undefined ? "no reading yet" : String(shown);
    element.dataset.seq = String(state.seq);
    element.removeAttribute("title");
    delete element.dataset.code;
    const stale = state.stale === true;
    element.dataset.state = stale ? "stale" : "live";
    element.dataset.sealed = String(Boolean(state.e2e));
    if (mark) mark.hidden = !stale;
    if (lock) lock.hidden = !state.e2e;
    also.onValue?.(state);
  }, (error) => {
    const refused = error.error === REFUSED;
    element.textContent = refused ? refusalText(error) : "unavailable";
    element.dataset.state = refused ? "refused" : "unavailable";
    if (refused) element.dataset.code = String(error.kwargs.code);
    else delete element.dataset.code;
    element.title = error.error;
    if (mark) mark.hidden = true;
    if (lock) lock.hidden = true;
    also.onUnavailable?.(error);
  });
}

// The frame every page shares: the hub (transport from ?transport=, default auto), the status line, the login
// form while signed out, the logout button. onUser(user) runs when a (different) user is online.
export function startPage({onUser}) {
  const transport = new URLSearchParams(location.search).get("transport") || "auto";
  const hub = createHub({transport});
  globalThis.hub = hub;   // a handle for the console and for tests
  const login = document.getElementById("login");
  mountStatus(hub, document.getElementById("status"));
  mountLogin(hub, login);
  mountSignedInView(hub, {login, main: document.getElementById("app"), onUser});
  document.getElementById("logout").addEventListener("click", () => hub.logout());
  return hub;
}

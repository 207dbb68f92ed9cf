// The dashboard: clock, shared counter, serial and OData values, the greeting.
import {bindState, startPage} from "./ui.js";

const $ = (id) => document.getElementById(id);
const greeting = $("greeting");
let profile = null;

function greet(user) {
  const name = (profile && (profile.first_name || profile.username)) || (user && (user.first_name || user.username)) || "";
  greeting.textContent = name ? `Hello ${name}` : "Hello";
}

const hub = startPage({
  onUser: (user) => {
    profile = null;
    $("admin-link").hidden = user.role !== "admin";
    greet(user);
  },
});
hub.onStatus((status) => {
  document.body.dataset.online = String(status.state === "online");
});

bindState(hub, "time.tic", "time.get", $("clock"));
bindState(hub, "counter.changed", "counter.get", $("count"));
bindState(hub, "iot.serial.reader", "iot.serial.get", $("serial"));
bindState(hub, "iot.odata.value", "iot.odata.get", $("odata"));
// the profile (end-to-end encrypted when the hub has E2E_ENCRYPTION on): a refused one shows in its panel and
// the greeting falls back to the name from the login, never to an older profile
function describeProfile(state) {
  const value = state.value;
  if (!value || typeof value !== "object") return "no profile on this hub yet";
  const name = [value.first_name, value.last_name].filter(Boolean).join(" ") || value.username || "";
  return value.email ? `${name} · ${value.email}` : name;
}

bindState(hub, "users.changed", "users.me", $("profile"), describeProfile, {
  onValue: (state) => {
    profile = state.value && typeof state.value === "object" ? state.value : null;
    greet(hub.status.user);
  },
  onUnavailable: () => {
    profile = null;
    greet(hub.status.user);
  },
});

$("click").addEventListener("click", async () => {
  $("click-error").textContent = "";
  try {
    await hub.call("counter.click", [], {n: 1});
  } catch (err) {
    $("click-error").textContent = err.error === "wamp.error.no_such_procedure"
      ? "The counter is unavailable." : `Click failed: ${err.message}`;
  }
});

hub.connect();

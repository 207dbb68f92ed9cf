// The admin page: list, create, edit and delete users on the master through
// master.users.list / master.users.save / master.users.delete (role admin;
// the router refuses these RPCs to everyone else).
import {el, startPage} from "./ui.js";

const $ = (id) => document.getElementById(id);
const message = $("admin-message");
const form = $("user-form");
const fields = {
  username: $("f-username"), first_name: $("f-first-name"), last_name: $("f-last-name"), email: $("f-email"),
};

function say(text, isError = false) {
  message.textContent = text;
  message.classList.toggle("error", isError);
}

function describe(err) {
  if (err.error === "wamp.error.no_such_procedure") return "User administration is unavailable (no master on this hub).";
  if (err.error === "wamp.error.not_authorized") return `Not authorized (${err.error}).`;
  return `${err.message} (${err.error})`;
}

function edit(profile) {
  $("form-title").textContent = profile ? `Edit ${profile.username}` : "New user";
  fields.username.readOnly = Boolean(profile);
  for (const [name, input] of Object.entries(fields)) input.value = profile ? String(profile[name] ?? "") : "";
  $("f-active").checked = profile ? profile.is_active !== false : true;
  $("f-admin").checked = Boolean(profile && profile.is_superuser);
  $("f-password").value = "";
  (profile ? fields.first_name : fields.username).focus();
}

function row(profile) {
  const editButton = el("button", {type: "button", text: "Edit", "aria-label": `Edit ${profile.username}`});
  const deleteButton = el("button", {type: "button", class: "danger", text: "Delete",
                                     "aria-label": `Delete ${profile.username}`});
  editButton.addEventListener("click", () => edit(profile));
  deleteButton.addEventListener("click", async () => {
    if (deleteButton.dataset.confirm !== "yes") {   // two steps instead of a blocking confirm()
      deleteButton.dataset.confirm = "yes";
      deleteButton.textContent = "Confirm delete";
      return;
    }
    try {
      await hub.call("master.users.delete", [profile.username]);
      say(`Deleted ${profile.username}.`);
      await refresh();
    } catch (err) {
      say(describe(err), true);
    }
  });
  const cell = (label, text) => el("td", {"data-label": label, text});   // the label heads the cell on a phone
  return el("tr", {"data-username": profile.username},
    cell("Username", profile.username), cell("First name", profile.first_name ?? ""),
    cell("Last name", profile.last_name ?? ""), cell("Email", profile.email ?? ""),
    cell("Active", profile.is_active === false ? "no" : "yes"),
    el("td", {class: "actions"}, editButton, deleteButton));
}

function profilesOf(result) {
  const list = result && !Array.isArray(result) && typeof result === "object" ? (result.users ?? result.value) : result;
  return Array.isArray(list) ? list : [];
}

async function refresh() {
  try {
    const profiles = profilesOf(await hub.call("master.users.list"));
    $("users").tBodies[0].replaceChildren(...profiles.map(row));
    $("users").dataset.loaded = "true";
  } catch (err) {
    $("users").tBodies[0].replaceChildren();
    say(describe(err), true);
  }
}

// "Online now": who has a page open, as the sessions subscribed to the clock every dashboard shows (hub.presence)
const PRESENCE_TOPIC = "time.tic";
const PRESENCE_EVERY_MS = 5000;
let presenceTimer = null;

async function refreshOnline() {
  try {
    const here = await hub.call("hub.presence", [PRESENCE_TOPIC]);
    $("online-count").textContent = `${here.users} user(s), ${here.sessions} session(s) on this node`;
    $("online-names").replaceChildren(...(here.names ?? []).map((name) => el("li", {text: name})));
    $("online").hidden = false;
  } catch (err) {
    $("online").hidden = true;
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const profile = {
    username: fields.username.value.trim(), first_name: fields.first_name.value, last_name: fields.last_name.value,
    email: fields.email.value.trim(), is_active: $("f-active").checked, is_superuser: $("f-admin").checked,
  };
  if ($("f-password").value) profile.password = $("f-password").value;
  try {
    await hub.call("master.users.save", [profile]);
    say(`Saved ${profile.username}.`);
    edit(null);
    await refresh();
  } catch (err) {
    say(describe(err), true);
  }
});
$("new").addEventListener("click", () => edit(null));

const hub = startPage({
  onUser: (user) => {
    const admin = user.role === "admin";
    $("admin-denied").hidden = admin;
    form.hidden = !admin;
    say("");
    // asked even for non-admins: the router, not this page, decides (a refusal is shown)
    refresh();
    if (admin) {
      refreshOnline();
      if (presenceTimer === null) presenceTimer = setInterval(refreshOnline, PRESENCE_EVERY_MS);
    }
  },
});
// what needs the hub waits while it is offline (the status line counts down to the next attempt)
hub.onStatus((status) => {
  const online = status.state === "online";
  for (const button of document.querySelectorAll("#save, #users button")) button.disabled = !online;
});

hub.connect();

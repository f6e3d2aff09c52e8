// The join page: reads the invite from the URL fragment (it never reaches
// a server log), shows what it says (POST /tokens/examine), whether it
// will work for the signed-in user (POST /tokens/verify_invite_token), and
// joins through the invite type's route (POST /user/groups/join,
// /user/spaces/join, …). The signed-in user is an Onedata access token
// kept in sessionStorage and sent as X-Auth-Token.
"use strict";

const TOKEN_KEY = "groupjoin.accessToken";
const $ = (id) => document.getElementById(id);

// Onedata's serialized tokens need no escaping; a hand-edited link may
// still hold %-escapes, and a broken one must not stop the page.
function inviteFromHash() {
  const raw = location.hash.replace(/^#/, "");
  try {
    return decodeURIComponent(raw).trim();
  } catch (e) {
    return raw.trim();
  }
}
const invite = inviteFromHash();

// The invites a user accepts for themselves: Onezone's route, what the
// target is called, and the JSON key of its id in the examined type.
const USER_JOINS = {
  userJoinGroup: { path: "/user/groups/join", noun: "group", key: "groupId" },
  userJoinSpace: { path: "/user/spaces/join", noun: "space", key: "spaceId" },
  userJoinHarvester: { path: "/user/harvesters/join", noun: "harvester", key: "harvesterId" },
  userJoinCluster: { path: "/user/clusters/join", noun: "cluster", key: "clusterId" },
  userJoinAtmInventory: { path: "/user/atm_inventories/join", noun: "automation inventory", key: "atmInventoryId" },
};
// The examined invite's type (a key of USER_JOINS), its entry and its
// target's id, once known.
let joinType = "";
let joinKind = null;
let target = "";

function accessToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// post sends {"token": token, ...extra} and returns {status, body}; body is
// the parsed JSON answer or null.
async function post(path, token, withAuth, extra) {
  const headers = { "Content-Type": "application/json" };
  if (withAuth && accessToken()) {
    headers["X-Auth-Token"] = accessToken();
  }
  const resp = await fetch(path, {
    method: "POST",
    headers,
    body: JSON.stringify(Object.assign({ token }, extra || {})),
    credentials: "same-origin",
    cache: "no-store",
  });
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    body = null;
  }
  return normalize({ status: resp.status, body });
}

// normalize reads an error in either of the edge's models: the documented
// {"error": "<code>", "error_description": "…"} is kept; Onezone's
// {"error": {"id", "description", "details"}} becomes the documented code
// and status the page words its answers by.
function normalize(r) {
  const e = r.body && r.body.error;
  if (!e || typeof e !== "object") return r;
  const details = e.details || {};
  const caveat = (details.caveat && details.caveat.type) || "";
  let status = r.status;
  let code = "invalid_token";
  let desc = e.description || "";
  switch (e.id) {
    case "unauthorized":
      code = details.authError ? "invalid_token" : "unauthorized";
      break;
    case "tokenCaveatUnverified":
      if (caveat === "consumer") {
        // Sign-in status decides between "sign in" and "someone else".
        status = accessToken() ? 403 : 401;
        code = accessToken() ? "forbidden" : "unauthorized";
      } else if (caveat === "time") {
        desc = "Invite token has expired.";
      }
      break;
    case "inviteTokenUsageLimitReached":
      desc = "Invite token usage limit has been reached.";
      break;
    case "tokenRevoked":
      desc = "Invite token has been revoked.";
      break;
    case "badValueToken":
      if (details.tokenError && details.tokenError.id === "notAnInviteToken") desc = "Provided token is not an invite of a type served here.";
      break;
    case "relationAlreadyExists":
      code = "already_member";
      break;
    case "serviceUnavailable":
      code = "service_unavailable";
      break;
    case "malformedData":
    case "missingRequiredValue":
    case "badValueEmpty":
      code = "invalid_request";
      break;
  }
  return { status, body: { error: code, error_description: desc } };
}

function setText(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  el.className = cls || "";
}

function formatTime(seconds) {
  const d = new Date(seconds * 1000);
  const left = seconds - Date.now() / 1000;
  let rel = "";
  if (left <= 0) {
    rel = " (expired)";
  } else if (left < 3600) {
    rel = " (in " + Math.ceil(left / 60) + " minutes)";
  } else if (left < 48 * 3600) {
    rel = " (in " + Math.round(left / 3600) + " hours)";
  } else {
    rel = " (in " + Math.round(left / 86400) + " days)";
  }
  return d.toLocaleString() + rel;
}

function subjectName(s) {
  if (!s || s.type === "nobody") return "nobody";
  if (s.type === "user") return s.id;
  return s.type + " " + s.id;
}

// describe turns one caveat (Onezone's JSON) into a sentence.
function describe(c) {
  const list = (v) => (v || []).join(", ");
  switch (c.type) {
    case "ip": return "Only from the networks " + list(c.whitelist) + ".";
    case "asn": return "Only from the autonomous systems " + list(c.whitelist) + ".";
    case "geo.country":
      return (c.filter === "blacklist" ? "Not from " : "Only from ") + "the countries " + list(c.list) + ".";
    case "geo.region":
      return (c.filter === "blacklist" ? "Not from " : "Only from ") + "the regions " + list(c.list) + ".";
    case "consumer":
      return "Only for " + (c.whitelist || []).map((x) => x.replace(/^usr-/, "user ").replace(/^grp-/, "members of group ").replace(/^prv-/, "provider ")).join(", ") + ".";
    case "unknown": return "A restriction this page does not understand: " + c.caveat;
    default: return "Restriction of type " + (c.type || c.scope) + " (an invite with it cannot be used here).";
  }
}

// inviteProblem is the human message for an edge error about the invite.
function inviteProblem(body) {
  const desc = (body && body.error_description) || "";
  if (/expired/i.test(desc)) return "This invite has expired.";
  if (/usage limit/i.test(desc)) return "This invite has been used up: it admits no more members.";
  if (/revoked/i.test(desc)) return "This invite has been revoked.";
  if (/not registered/i.test(desc)) return "This invite is not known here (it may have been withdrawn).";
  if (/not a group invite|not a user\w+ invite|not an invite of a type/i.test(desc)) return "This invite cannot be used here.";
  return "This invite is not valid here.";
}

function answerMessage(r, forJoin) {
  const code = r.body && r.body.error;
  switch (r.status) {
    case 200:
      if (!accessToken()) return { text: "This invite is valid: sign in to join.", cls: "ok" };
      return { text: "Yes: this invite will work for you.", cls: "ok" };
    case 201:
      return { text: "Done: you are now a member of " + noun() + " " + target + ".", cls: "ok" };
    case 409:
      return { text: "You are already a member of this " + noun() + ".", cls: "ok" };
    case 400:
      if (code === "invalid_token") return { text: inviteProblem(r.body), cls: "bad" };
      return { text: "The request was refused: " + ((r.body && r.body.error_description) || "invalid request."), cls: "bad" };
    case 401:
      if (code === "invalid_token") {
        return { text: "Your access token was not accepted (it may have expired). Please sign in again.", cls: "bad" };
      }
      return { text: forJoin ? "Please sign in to join." : "Sign in to check whether this invite is meant for you.", cls: "bad" };
    case 403:
      return { text: "This invite is meant for someone else.", cls: "bad" };
    case 503:
      return { text: "The service is busy. Please try again in a moment.", cls: "bad" };
  }
  return { text: "Something went wrong (status " + r.status + "). Please try again later.", cls: "bad" };
}

function noun() {
  return joinKind ? joinKind.noun : "group";
}
// Each answer shown bumps its element's data-seq: tests (and anyone
// scripting the page) can wait for the n-th answer.
function bump(id) {
  const el = $(id);
  el.dataset.seq = String(Number(el.dataset.seq || "0") + 1);
}

async function examine() {
  if (!invite) {
    setText("invite-status", "This link contains no invite. Ask for a new link.", "bad");
    return false;
  }
  try {
    const r = await post("/tokens/examine", invite, false);
    if (r.status !== 200) {
      setText("invite-status", "This link does not contain a readable invite.", "bad");
      return false;
    }
    const e = r.body;
    const it = e.type && e.type.inviteToken;
    if (!it) {
      setText("invite-status", "This link does not contain an invite.", "bad");
      return false;
    }
    joinType = it.inviteType;
    joinKind = USER_JOINS[joinType] || null;
    if (!joinKind) {
      // A group, space or harvester joins with the other invites: an
      // administrator does that through the API, not this page.
      setText("invite-status", "This invite (" + it.inviteType + ") is not for a person to accept: it makes a group, space or harvester join. Use it through the API.", "bad");
      return false;
    }
    target = it[joinKind.key] || "";
    setText("target-kind", joinKind.noun.charAt(0).toUpperCase() + joinKind.noun.slice(1));
    setText("group", target);
    document.title = "Join a " + joinKind.noun;
    setText("title", "Join a " + joinKind.noun);
    setText("join", "Join the " + joinKind.noun);
    setText("inviter", subjectName(e.subject));
    const times = e.caveats.filter((c) => c.type === "time").map((c) => c.validUntil);
    setText("expiry", times.length ? formatTime(Math.min(...times)) : "no expiry");
    const ul = $("restrictions");
    ul.replaceChildren();
    for (const c of e.caveats) {
      if (c.type === "time") continue;
      const li = document.createElement("li");
      li.textContent = describe(c);
      ul.appendChild(li);
    }
    if (!ul.children.length) {
      const li = document.createElement("li");
      li.textContent = "None.";
      ul.appendChild(li);
    }
    $("invite-details").hidden = false;
    setText("invite-status", "You have been invited to join a " + joinKind.noun + ".");
    return true;
  } catch (err) {
    setText("invite-status", "The invite could not be read (network error).", "bad");
    return false;
  }
}

async function whoami() {
  const tok = accessToken();
  $("signin").hidden = !!tok;
  $("signout").hidden = !tok;
  if (!tok) {
    setText("whoami", "You are not signed in.");
    return;
  }
  // The name is read from the token without verifying it; verify and join
  // verify it.
  try {
    const r = await post("/tokens/examine", tok, false);
    const name = r.status === 200 ? subjectName(r.body.subject) : "an unreadable token";
    setText("whoami", "Signed in as " + name + ".");
  } catch (err) {
    setText("whoami", "Signed in.");
  }
}

async function verify() {
  if (!invite) {
    setText("verdict", "No invite to check.", "bad");
    return;
  }
  try {
    const r = await post("/tokens/verify_invite_token", invite, true, { expectedInviteType: joinType || "userJoinGroup" });
    const m = answerMessage(r, false);
    setText("verdict", m.text, m.cls);
  } catch (err) {
    setText("verdict", "The invite could not be checked (network error).", "bad");
  }
  bump("verdict");
}

async function join() {
  const btn = $("join");
  btn.disabled = true;
  try {
    const r = await post(joinKind ? joinKind.path : "/user/groups/join", invite, true);
    const m = answerMessage(r, true);
    setText("result", m.text, m.cls);
  } catch (err) {
    setText("result", "The join could not be sent (network error).", "bad");
  } finally {
    btn.disabled = false;
    bump("result");
    $("result").focus();
    await verify();
  }
}

$("signin").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const tok = $("access-token").value.trim();
  if (!tok) return;
  sessionStorage.setItem(TOKEN_KEY, tok);
  $("access-token").value = "";
  await whoami();
  await verify();
  $("signout").focus();
});

$("signout").addEventListener("click", async () => {
  sessionStorage.removeItem(TOKEN_KEY);
  await whoami();
  await verify();
  $("access-token").focus();
});

$("join").addEventListener("click", join);

(async () => {
  const ok = await examine();
  $("join").disabled = !invite;
  await whoami();
  if (ok) await verify();
  else setText("verdict", "No usable invite.", "bad");
  document.body.dataset.ready = "true";
})();

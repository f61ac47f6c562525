// The noVNC console page (templates/console/vnc.html), under a strict CSP: no inline code, no eval.
//
// Every (re)connect POSTs for a fresh single-use ticket, which rides in Sec-WebSocket-Protocol and
// never in a URL. The page follows the VM's state over the live WebSocket: when the VM stops, it
// says so (with a Start button when the user may start it) and reconnects once the VM runs again.
// Strings shown to users come from the template's data-t-* attributes (translated there).

const app = document.getElementById("console-app");
const data = app.dataset;
const { default: RFB } = await import(data.rfbUrl);

// ---- strings, elements, small helpers ----

function t(key, values = {}) {
  const text = data["t" + key[0].toUpperCase() + key.slice(1)] || key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in values ? String(values[name]) : match));
}

const liveLabelsNode = document.getElementById("live-labels");
const liveLabels = liveLabelsNode ? JSON.parse(liveLabelsNode.textContent) || {} : {};
const label = (key) => liveLabels[key] || key;

const $ = (id) => document.getElementById(id);
const stateEl = $("console-state");
const badge = $("console-view-only");
const screenEl = $("console-screen");
const display = $("screen");
const overlay = $("console-overlay");
const notice = $("console-notice");
const noticeDetail = $("console-notice-detail");
const startButton = $("console-start");
const reconnectButton = $("console-reconnect");
const scaling = $("console-scaling");
const screenshotButton = $("console-screenshot");
const guestClipboard = $("console-clipboard-guest");
const clipboardText = $("console-clipboard-text");
const typeButton = $("console-clipboard-type");
const liveIndicator = $("live-indicator");

function csrfToken() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
}

function wsUrl(url) {
  if (!url.startsWith("/")) return url;
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + url;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- the VM, as the live WebSocket reports it ----

const CONSOLE_STATES = new Set(["running", "paused", "blocked"]); // a ticket is issued in these
const STARTABLE = new Set(["shutoff", "crashed"]);
const vm = {
  id: Number(data.vmId),
  name: data.vmName,
  state: data.vmState,
  missing: data.vmMissing === "1",
  deleted: false,
};
const hasConsole = () => !vm.missing && !vm.deleted && CONSOLE_STATES.has(vm.state);

// ---- connection state ----

let rfb = null; // the current RFB client, connecting or connected
let fetching = false; // a ticket request is in flight
let generation = 0; // bumped to drop the answer of a request made before a state change
let attempts = 0; // failed (re)connects in a row, for the backoff
let retryTimer = null;
let stopped = false; // refused (403) or idle: wait for the user to press Reconnect
let viewOnly = data.viewOnly === "1";
let typing = false; // the toolbar is typing a text into the guest
let lastInput = Date.now();
// After this long without input (the proxy's idle timeout), a dropped console stays closed.
const IDLE_MS = (Number(data.idleSeconds) || 1800) * 1000;
const MAX_BACKOFF_S = 30;

function setState(state, text) {
  stateEl.dataset.state = state;
  stateEl.textContent = text;
  syncControls();
}

// Input buttons work only on a connected, writable console; the text box keeps a draft meanwhile.
function syncControls() {
  const connected = stateEl.dataset.state === "connected";
  document.querySelectorAll("#console-app [data-input]").forEach((el) => {
    el.disabled = viewOnly || (el.tagName === "BUTTON" && !connected) || (el === typeButton && typing);
  });
  screenshotButton.disabled = !connected;
}

function showNotice(message, detail = "", { start = false, reconnect = false } = {}) {
  notice.textContent = message;
  noticeDetail.textContent = detail;
  startButton.classList.toggle("hidden", !start);
  reconnectButton.classList.toggle("hidden", !reconnect);
  overlay.classList.remove("hidden");
}

function hideNotice() {
  overlay.classList.add("hidden");
}

function clearRetry() {
  if (retryTimer) clearInterval(retryTimer);
  retryTimer = null;
}

function dropClient() {
  const client = rfb;
  rfb = null; // its disconnect event is then ignored
  if (client) client.disconnect();
}

function applyViewOnly() {
  badge.classList.toggle("hidden", !viewOnly);
  syncControls();
  if (viewOnly) {
    $("console-keys").classList.add("hidden");
    if (scaling.value === "remote") scaling.value = "scale";
  }
  if (rfb) rfb.viewOnly = viewOnly;
}

async function connect() {
  clearRetry();
  if (rfb || fetching) return;
  if (!hasConsole()) {
    showVmState();
    return;
  }
  stopped = false;
  const mine = ++generation;
  fetching = true;
  setState("connecting", t("connecting"));
  let response;
  let body = {};
  try {
    response = await fetch(data.ticketUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ kind: "vnc" }),
    });
    body = await response.json().catch(() => ({}));
  } catch {
    response = null;
  } finally {
    if (mine === generation) fetching = false;
  }
  if (mine !== generation) return; // the VM changed state meanwhile; that path decides
  if (!response) {
    retryLater(t("noTicket"));
    return;
  }
  if (!response.ok) {
    const detail = body.detail || `${response.status} ${response.statusText}`;
    // Refused for good (no privilege, the VM out of reach since a revoke, logged out): no retry.
    if ([401, 403, 404].includes(response.status)) refuse(detail);
    else if (!hasConsole()) showVmState();
    else retryLater(detail, response.status === 429 ? 10 : 0);
    return;
  }
  open(body);
}

function open(ticket) {
  viewOnly = Boolean(ticket.view_only);
  applyViewOnly();
  let client;
  try {
    client = new RFB(display, wsUrl(ticket.url), { wsProtocols: ticket.protocols, shared: true });
  } catch (error) {
    retryLater(String(error));
    return;
  }
  rfb = client;
  client.viewOnly = viewOnly;
  client.background = "#000";
  applyScaling();
  client.addEventListener("connect", () => {
    if (rfb !== client) return;
    attempts = 0;
    setState("connected", t("connected"));
    hideNotice();
    client.focus({ preventScroll: true });
  });
  client.addEventListener("disconnect", () => {
    if (rfb !== client) return; // one we dropped on purpose
    rfb = null;
    if (stopped) return;
    if (!hasConsole()) showVmState();
    else if (Date.now() - lastInput > IDLE_MS) {
      stopped = true;
      setState("disconnected", t("disconnected"));
      showNotice(t("idle"), "", { reconnect: true });
    } else retryLater();
  });
  client.addEventListener("clipboard", (event) => {
    guestClipboard.value = event.detail.text;
  });
  client.addEventListener("credentialsrequired", () => {
    refuse(t("password"));
    dropClient();
  });
  client.addEventListener("securityfailure", (event) => {
    refuse(t("security", { reason: event.detail.reason || event.detail.status }));
  });
}

function retryLater(detail = "", minSeconds = 0) {
  clearRetry();
  attempts += 1;
  let left = Math.max(Math.min(2 ** (attempts - 1), MAX_BACKOFF_S), minSeconds);
  const show = () => setState("reconnecting", t("reconnecting", { seconds: left }));
  show();
  if (detail) showNotice(detail, "", { reconnect: true });
  retryTimer = setInterval(() => {
    left -= 1;
    if (left > 0) show();
    else connect();
  }, 1000);
}

function refuse(detail) {
  clearRetry();
  stopped = true;
  setState("refused", t("refused"));
  showNotice(detail, "", { reconnect: true });
}

function showVmState() {
  clearRetry();
  generation += 1;
  fetching = false;
  dropClient();
  let message;
  if (vm.deleted) message = t("vmDeleted");
  else if (vm.missing) message = t("vmMissing");
  else if (vm.state === "shutoff") message = t("vmOff");
  else message = t("vmNotRunning", { state: label(vm.state) });
  setState("off", vm.deleted ? label("deleted") : vm.missing ? label("missing") : label(vm.state));
  const mayStart = Boolean(data.startUrl) && !vm.missing && !vm.deleted && STARTABLE.has(vm.state);
  showNotice(message, "", { start: mayStart });
  startButton.disabled = false;
}

function reconnectNow() {
  stopped = false;
  attempts = 0;
  hideNotice();
  connect();
}

function applyVm(update) {
  const hadConsole = hasConsole();
  vm.state = update.state ?? vm.state;
  vm.missing = Boolean(update.missing);
  vm.deleted = Boolean(update.deleted);
  if (vm.deleted) {
    showVmState();
    return;
  }
  if (hasConsole()) {
    // Running again: connect at once (a pending retry keeps its backoff while nothing changed).
    if (!hadConsole && !rfb && !fetching) reconnectNow();
    return;
  }
  // "shutting down" still has a picture worth watching; the proxy closes it when QEMU exits.
  if (vm.state === "shutdown" && rfb) return;
  showVmState();
}

// ---- the live WebSocket: the VM's state, pushed ----

let liveDelay = 500;
let liveOpened = false;

async function resync() {
  // After a gap in the live stream (or a start without news), read the VM's state once.
  try {
    const response = await fetch(data.vmApiUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (response.ok) applyVm(await response.json());
  } catch {
    // the live stream will tell us
  }
}

function follow() {
  const socket = new WebSocket(wsUrl(data.liveUrl));
  socket.addEventListener("open", () => {
    liveDelay = 500;
    if (liveIndicator) liveIndicator.classList.add("on");
    if (liveOpened) resync();
    liveOpened = true;
  });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "vm" && message.vm && message.vm.id === vm.id) applyVm(message.vm);
  });
  socket.addEventListener("close", (event) => {
    if (liveIndicator) liveIndicator.classList.remove("on");
    if (event.code === 4401 || event.code === 4404) return; // not allowed: do not retry
    setTimeout(follow, liveDelay);
    liveDelay = Math.min(liveDelay * 2, 10000);
  });
}

// ---- Start ----

async function startVm() {
  startButton.disabled = true;
  showNotice(t("starting"));
  let response;
  let text = "";
  try {
    response = await fetch(data.startUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
    });
    // The answer is the panel's message fragment; only its text is used (never inserted as HTML).
    text = new DOMParser().parseFromString(await response.text(), "text/html").body.textContent.trim();
  } catch {
    response = null;
  }
  if (!response || !response.ok || response.headers.get("X-Action-Result") === "refused") {
    showVmState();
    noticeDetail.textContent = text || (response ? `${response.status} ${response.statusText}` : t("noTicket"));
    return;
  }
  if (hasConsole()) {
    if (!rfb && !fetching) reconnectNow();
    return;
  }
  showNotice(t("waiting"), text);
  // The live stream normally says "running" within a second; if it stays silent, ask once.
  setTimeout(() => {
    if (!rfb && !fetching && !hasConsole()) resync();
  }, 4000);
}

// ---- toolbar ----

const KEYS = {
  ctrl: [0xffe3, "ControlLeft"],
  alt: [0xffe9, "AltLeft"],
  shift: [0xffe1, "ShiftLeft"],
  tab: [0xff09, "Tab"],
  escape: [0xff1b, "Escape"],
  enter: [0xff0d, "Enter"],
};

function keyFor(name) {
  const match = /^f(\d+)$/.exec(name);
  return match ? [0xffbe + Number(match[1]) - 1, "F" + match[1]] : KEYS[name];
}

function sendCombo(combo) {
  if (!rfb || viewOnly) return;
  const keys = combo.split("-").map(keyFor);
  keys.forEach(([keysym, code]) => rfb.sendKey(keysym, code, true));
  keys.reverse().forEach(([keysym, code]) => rfb.sendKey(keysym, code, false));
}

// A US keyboard: the physical key (KeyboardEvent.code) and Shift for each printable ASCII
// character, so typed text arrives as real key presses (QEMU uses the scancode, not the keysym).
const US_KEYS = (() => {
  const keys = new Map();
  for (let c = 0; c < 26; c++) {
    const code = "Key" + String.fromCharCode(65 + c);
    keys.set(String.fromCharCode(97 + c), [code, false]);
    keys.set(String.fromCharCode(65 + c), [code, true]);
  }
  const digitsShifted = ")!@#$%^&*(";
  for (let d = 0; d < 10; d++) {
    keys.set(String(d), ["Digit" + d, false]);
    keys.set(digitsShifted[d], ["Digit" + d, true]);
  }
  const punctuation = [
    ["Backquote", "`", "~"], ["Minus", "-", "_"], ["Equal", "=", "+"], ["BracketLeft", "[", "{"],
    ["BracketRight", "]", "}"], ["Backslash", "\\", "|"], ["Semicolon", ";", ":"], ["Quote", "'", '"'],
    ["Comma", ",", "<"], ["Period", ".", ">"], ["Slash", "/", "?"],
  ];
  for (const [code, plain, shifted] of punctuation) {
    keys.set(plain, [code, false]);
    keys.set(shifted, [code, true]);
  }
  keys.set(" ", ["Space", false]);
  return keys;
})();

function typeCharacter(ch) {
  if (ch === "\r") return;
  if (ch === "\n") return sendCombo("enter");
  if (ch === "\t") return sendCombo("tab");
  const point = ch.codePointAt(0);
  const known = US_KEYS.get(ch);
  if (!known) {
    // Not on a US keyboard: the keysym alone (Latin-1 is its own keysym, the rest is Unicode).
    rfb.sendKey(point < 0x100 ? point : 0x1000000 + point, "");
    return;
  }
  const [code, shifted] = known;
  if (shifted) rfb.sendKey(KEYS.shift[0], KEYS.shift[1], true);
  rfb.sendKey(point, code, true);
  rfb.sendKey(point, code, false);
  if (shifted) rfb.sendKey(KEYS.shift[0], KEYS.shift[1], false);
}

async function typeText(text) {
  if (typing || !rfb || viewOnly) return;
  typing = true;
  syncControls();
  try {
    for (const ch of text) {
      if (!rfb || viewOnly || stateEl.dataset.state !== "connected") break;
      typeCharacter(ch);
      await sleep(12); // the guest's keyboard buffer is small
    }
  } finally {
    typing = false;
    syncControls();
    if (rfb) rfb.focus({ preventScroll: true });
  }
}

const SCALING_KEY = "kvmpanel.console.scaling";

function applyScaling() {
  if (viewOnly && scaling.value === "remote") scaling.value = "scale";
  try {
    localStorage.setItem(SCALING_KEY, scaling.value);
  } catch {
    // storage may be off; the choice then lasts for this page
  }
  if (!rfb) return;
  rfb.scaleViewport = scaling.value === "scale";
  rfb.resizeSession = scaling.value === "remote" && !viewOnly;
}

function saveScreenshot() {
  if (!rfb) return;
  rfb.toBlob((blob) => {
    if (!blob) return;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${vm.name}-screen.png`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 30000);
  }, "image/png");
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen();
  else screenEl.requestFullscreen().catch(() => {});
  if (rfb) rfb.focus({ preventScroll: true });
}

function togglePanel(button, force) {
  const panel = $(button.dataset.toggle);
  const show = force ?? panel.classList.contains("hidden");
  panel.classList.toggle("hidden", !show);
  button.setAttribute("aria-expanded", String(show));
}

document.querySelectorAll("#console-app [data-toggle]").forEach((button) => {
  button.addEventListener("click", () => togglePanel(button));
});
document.addEventListener("click", (event) => {
  const toggle = $("console-keys-toggle");
  if (!event.target.closest(".console-menu")) togglePanel(toggle, false);
});
document.querySelectorAll("#console-keys [data-combo]").forEach((button) => {
  button.addEventListener("click", () => {
    sendCombo(button.dataset.combo);
    togglePanel($("console-keys-toggle"), false);
    if (rfb) rfb.focus({ preventScroll: true });
  });
});
$("console-cad").addEventListener("click", () => {
  if (rfb && !viewOnly) {
    rfb.sendCtrlAltDel();
    rfb.focus({ preventScroll: true });
  }
});
$("console-clipboard-send").addEventListener("click", () => {
  if (rfb && !viewOnly) rfb.clipboardPasteFrom(clipboardText.value);
});
typeButton.addEventListener("click", () => typeText(clipboardText.value));
scaling.addEventListener("change", applyScaling);
$("console-fullscreen").addEventListener("click", toggleFullscreen);
screenshotButton.addEventListener("click", saveScreenshot);
startButton.addEventListener("click", startVm);
reconnectButton.addEventListener("click", reconnectNow);

// Activity, for the idle rule: a console dropped after a long time without input stays closed.
for (const type of ["keydown", "pointerdown", "wheel"]) {
  app.addEventListener(type, () => (lastInput = Date.now()), { capture: true, passive: true });
}
window.addEventListener("pagehide", dropClient);

// ---- go ----

// For tests and debugging, like window.kvmpanelLive: read-only handles, nothing that bypasses a check.
window.kvmpanelConsole = {
  get rfb() {
    return rfb;
  },
  get state() {
    return stateEl.dataset.state;
  },
  vm,
};

try {
  const saved = localStorage.getItem(SCALING_KEY);
  if (saved && [...scaling.options].some((option) => option.value === saved)) scaling.value = saved;
} catch {
  // no storage: keep the default
}
applyViewOnly();
follow();
connect();

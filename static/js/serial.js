// The serial console page: an xterm.js terminal on a WebSocket to the panel's serial consumer
// (apps/console/consumers.py), which relays the VM's ttyS0 as a libvirt console stream.
//
// Each connection first asks for a single-use ticket (POST {"kind": "serial"} to the ticket URL with
// the session and the CSRF token), then presents it in Sec-WebSocket-Protocol; Reconnect asks for a
// new one. Runs under a strict CSP: no inline code, every string comes from data-t-* attributes.
(function () {
  "use strict";

  const app = document.getElementById("serial-app");
  if (!app || typeof Terminal === "undefined") return;
  const data = app.dataset;
  const container = document.getElementById("terminal");
  const stateLabel = document.getElementById("serial-state");
  const reasonLabel = document.getElementById("serial-reason");
  const reconnectButton = document.getElementById("serial-reconnect");

  // The server's close codes (apps/console/consumers.py) and what to tell the user.
  const CLOSE_MESSAGES = {
    1009: null, // message too big: the server's reason says it
    4403: "revoked",
    4408: "idle",
    4409: "busy",
    4410: "ended",
  };
  const CLOSE_UNAVAILABLE = 4503;

  function text(key, values) {
    let message = data["t" + key.charAt(0).toUpperCase() + key.slice(1)] || key;
    for (const [name, value] of Object.entries(values || {})) message = message.replace("{" + name + "}", value);
    return message;
  }

  function csrfToken() {
    // The CSRF cookie is HttpOnly: the token comes from the hx-headers JSON the layout puts on <body>.
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function wsUrl(url) {
    if (/^wss?:\/\//.test(url)) return url;
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + url;
  }

  // xterm.js's DOM renderer writes its theme, metrics and colour classes into <style> elements that it
  // creates at run time; the strict CSP (style-src 'self') blocks those, and the terminal renders
  // without colours or row heights. Hand it stand-ins whose text goes into constructable stylesheets
  // instead: CSSOM from this origin's own script, which the CSP allows (it only stops styles that
  // arrive as markup).
  function adoptRuntimeStyles() {
    if (!("adoptedStyleSheets" in document) || typeof CSSStyleSheet.prototype.replaceSync !== "function") return;
    const createElement = Document.prototype.createElement;
    document.createElement = function (tagName, options) {
      if (String(tagName).toLowerCase() !== "style") return createElement.call(this, tagName, options);
      const sheet = new CSSStyleSheet();
      const standIn = createElement.call(this, "span");
      standIn.hidden = true;
      let css = "";
      const text = {
        configurable: true,
        get: () => css,
        set: (value) => {
          css = value == null ? "" : String(value);
          sheet.replaceSync(css);
        },
      };
      Object.defineProperty(standIn, "textContent", text);
      Object.defineProperty(standIn, "innerText", text);
      Object.defineProperty(standIn, "sheet", { get: () => sheet });
      const remove = standIn.remove.bind(standIn);
      standIn.remove = () => {
        document.adoptedStyleSheets = document.adoptedStyleSheets.filter((adopted) => adopted !== sheet);
        remove();
      };
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      return standIn;
    };
  }
  adoptRuntimeStyles();

  // ---- the terminal: theme and font from serial.css ----
  const style = getComputedStyle(container);
  const cssValue = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  const background = cssValue("--serial-bg", "#000000");
  const foreground = cssValue("--serial-fg", "#d1d5db");
  const term = new Terminal({
    allowProposedApi: false,
    cursorBlink: false,
    disableStdin: true,
    scrollback: 5000,
    fontFamily: cssValue("--serial-font", "monospace"),
    fontSize: parseInt(cssValue("--serial-font-size", "15"), 10) || 15,
    theme: {
      background: background,
      foreground: foreground,
      cursor: cssValue("--serial-cursor", foreground),
      cursorAccent: background,
      selectionBackground: cssValue("--serial-selection", "rgba(147, 197, 253, 0.35)"),
    },
  });
  term.open(container);

  const SCROLLBAR_WIDTH = 14;
  function cellSize() {
    const dimensions = term._core && term._core._renderService && term._core._renderService.dimensions;
    if (dimensions && dimensions.css.cell.width && dimensions.css.cell.height) return dimensions.css.cell;
    const probe = document.createElement("span");
    probe.className = "xterm-measure";
    probe.style.fontSize = term.options.fontSize + "px";
    probe.textContent = "W".repeat(50);
    container.appendChild(probe);
    const rect = probe.getBoundingClientRect();
    probe.remove();
    return { width: rect.width / 50, height: rect.height };
  }

  function fit() {
    const cell = cellSize();
    const box = container.getBoundingClientRect();
    const padding = getComputedStyle(container);
    const width = box.width - parseFloat(padding.paddingLeft) - parseFloat(padding.paddingRight) - SCROLLBAR_WIDTH;
    const height = box.height - parseFloat(padding.paddingTop) - parseFloat(padding.paddingBottom);
    if (!cell.width || !cell.height || width <= 0 || height <= 0) return;
    const cols = Math.max(20, Math.floor(width / cell.width));
    const rows = Math.max(4, Math.floor(height / cell.height));
    if (cols !== term.cols || rows !== term.rows) term.resize(cols, rows);
  }
  fit();
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(fit).observe(container);
  else window.addEventListener("resize", fit);

  // ---- the connection ----
  const encoder = new TextEncoder();
  let socket = null;
  let attempt = 0;

  function show(state, reason) {
    stateLabel.dataset.state = state;
    stateLabel.textContent = text(state);
    reasonLabel.textContent = reason || "";
    reconnectButton.classList.toggle("hidden", state !== "closed");
    term.options.disableStdin = state !== "connected";
  }

  function send(bytes) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(bytes);
  }
  term.onData((input) => send(encoder.encode(input)));
  term.onBinary((input) => send(Uint8Array.from(input, (c) => c.charCodeAt(0) & 0xff)));

  // `notice` is the server's last text frame, {"type": "close", "code", "reason"}: daphne sends no
  // reason in the close frame itself.
  function closeMessage(event, opened, notice) {
    const reason = (notice && notice.reason) || event.reason || "";
    if (event.code === CLOSE_UNAVAILABLE) return text("unavailable", { reason: reason });
    if (event.code in CLOSE_MESSAGES) {
      const key = CLOSE_MESSAGES[event.code];
      return key ? text(key) : reason;
    }
    if (!opened) return text("refused"); // refused before the upgrade: the browser gets no reason
    if (event.code === 1000 || event.code === 1001) return reason;
    return reason || text("lost");
  }

  async function connect() {
    attempt += 1;
    const mine = attempt;
    if (socket) {
      const old = socket;
      socket = null;
      old.close();
    }
    show("connecting");
    let answer;
    try {
      const response = await fetch(data.ticketUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ kind: "serial" }),
      });
      answer = await response.json().catch(() => ({}));
      if (!response.ok) {
        if (mine === attempt) show("closed", answer.detail || response.statusText || text("noTicket"));
        return;
      }
    } catch (error) {
      if (mine === attempt) show("closed", text("noTicket"));
      return;
    }
    if (mine !== attempt) return;
    const protocols = answer.protocols || ["binary", "kvmpanel.ticket." + answer.ticket];
    const ws = new WebSocket(wsUrl(answer.url), protocols);
    ws.binaryType = "arraybuffer";
    let opened = false;
    let notice = null;
    ws.addEventListener("open", () => {
      opened = true;
      show("connected");
      term.focus();
    });
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        term.write(new Uint8Array(event.data)); // console data: always binary
        return;
      }
      try {
        const message = JSON.parse(event.data);
        if (message && message.type === "close") notice = message;
      } catch (error) {
        // not a notice of ours: ignore it
      }
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return; // replaced by a newer connection
      socket = null;
      show("closed", closeMessage(event, opened, notice));
    });
    socket = ws;
  }

  reconnectButton.addEventListener("click", () => connect());
  container.addEventListener("click", () => term.focus());
  connect();
})();

// Jobs, live: the task panel on every page, the jobs list, and one job's page (progress bar, rate,
// time left, the live log). Pushed messages carry values only; the words come from #job-labels, in
// the viewer's language (apps/jobs/presenters.py live_labels).
(function () {
  "use strict";
  const panel = document.getElementById("task-panel");
  const labelsNode = document.getElementById("job-labels");
  if (!panel || !labelsNode) return; // not logged in: no panel, nothing to follow
  const labels = JSON.parse(labelsNode.textContent);
  // What the browser tests read: whether each stream is up, and how much arrived.
  const live = (window.kvmpanelJobs = { connected: false, jobConnected: false, received: 0, logLines: 0 });
  const TERMINAL = ["succeeded", "failed", "cancelled"];

  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  // The same as presenters.human_bytes, so a live update reads like the page it lands on.
  function humanBytes(count) {
    let value = Number(count) || 0;
    let unit = 0;
    while (value >= 1024 && unit < UNITS.length - 1) { value /= 1024; unit += 1; }
    return unit === 0 ? Math.floor(value) + " B" : value.toFixed(1) + " " + UNITS[unit];
  }

  // The same as presenters.clock: H:MM:SS, or M:SS under an hour.
  function clock(seconds) {
    const whole = Math.max(0, Math.floor(seconds));
    const hours = Math.floor(whole / 3600);
    const minutes = Math.floor((whole % 3600) / 60);
    const secs = String(whole % 60).padStart(2, "0");
    return hours ? hours + ":" + String(minutes).padStart(2, "0") + ":" + secs : minutes + ":" + secs;
  }

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, (_match, key) => (key in values ? values[key] : ""));
  }

  // One WebSocket with reconnects (backoff up to 10 s); 4401/4404 mean "not allowed": no retry.
  function follow(path, handlers) {
    let delay = 500;
    let opened = false;
    function connect() {
      const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
      socket.onopen = () => {
        delay = 500;
        handlers.open(opened);
        opened = true;
      };
      socket.onmessage = (event) => handlers.message(JSON.parse(event.data));
      socket.onclose = (event) => {
        handlers.close();
        if (event.code === 4401 || event.code === 4404) return;
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    connect();
  }

  // Runs `task` soon, once, however often it is asked for meanwhile (a burst of pushes, one fetch).
  function coalesce(task, wait) {
    let timer = null;
    let running = false;
    let again = false;
    async function run() {
      timer = null;
      if (running) { again = true; return; }
      running = true;
      try { await task(); } catch (error) { /* the next push or reconnect tries again */ }
      running = false;
      if (again) { again = false; schedule(); }
    }
    function schedule() { if (!timer) timer = setTimeout(run, wait); }
    return schedule;
  }

  // `table`: the answer is table rows, which an HTML parser drops unless they are inside a table.
  async function fetchDocument(url, table) {
    const response = await fetch(url, { headers: { "X-Requested-With": "live" }, credentials: "same-origin" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const text = await response.text();
    return new DOMParser().parseFromString(table ? "<table>" + text + "</table>" : text, "text/html");
  }

  // ---- every row, badge and bar that shows a job: panel, list, job page ----

  function setStatus(element, status) {
    element.textContent = labels.statuses[status] || status;
    element.className = "job-status job-status-" + status;
  }

  function setProgress(element, job) {
    if (job.status === "queued") element.removeAttribute("value");
    else element.value = job.percent;
    element.setAttribute("aria-valuenow", String(job.percent));
  }

  // Each element follows one stream, so messages arrive in order and a bar never steps back: the job
  // page's own header follows /ws/jobs/<id>/ (`onlyPage`), everything else follows /ws/jobs/.
  function applyJob(job, onlyPage) {
    document.querySelectorAll('[data-job-id="' + job.id + '"]').forEach((scope) => {
      if ((scope.id === "job-page") !== Boolean(onlyPage)) return;
      scope.dataset.status = job.status;
      scope.querySelectorAll('[data-field="status"]').forEach((el) => setStatus(el, job.status));
      scope.querySelectorAll('[data-field="progress"]').forEach((el) => setProgress(el, job));
      scope.querySelectorAll('[data-field="percent"]').forEach((el) => { el.textContent = job.percent + "%"; });
    });
  }

  // ---- the task panel ----

  // Console pages give the screen every pixel: there the panel starts folded, and remembers its own state.
  const consolePage = document.body.classList.contains("console-page") || document.body.classList.contains("serial-page");
  const COLLAPSED_KEY = "kvmpanel.taskPanel.collapsed" + (consolePage ? ".console" : "");
  const toggle = document.getElementById("task-panel-toggle");
  function setCollapsed(collapsed, remember) {
    panel.classList.toggle("collapsed", collapsed);
    toggle.setAttribute("aria-expanded", String(!collapsed));
    if (remember) {
      try { localStorage.setItem(COLLAPSED_KEY, collapsed ? "1" : "0"); } catch (error) { /* private mode */ }
    }
  }
  function rememberedCollapsed() {
    let stored = null;
    try { stored = localStorage.getItem(COLLAPSED_KEY); } catch (error) { /* private mode */ }
    return stored === null ? consolePage : stored === "1";
  }
  setCollapsed(rememberedCollapsed(), false);
  toggle.addEventListener("click", () => setCollapsed(!panel.classList.contains("collapsed"), true));
  // Another tab folded or opened its panel: follow it.
  window.addEventListener("storage", (event) => { if (event.key === COLLAPSED_KEY) setCollapsed(rememberedCollapsed(), false); });

  // A click anywhere on a row opens the job (the kind is also a real link, for keyboards and new tabs).
  panel.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a, button")) location.href = row.dataset.href;
  });

  const refreshPanel = coalesce(async () => {
    const doc = await fetchDocument(panel.dataset.panelUrl, true);
    const rows = doc.getElementById("task-panel-rows");
    if (!rows) return;
    document.getElementById("task-panel-rows").replaceWith(document.adoptNode(rows));
    panel.querySelector('[data-field="active-count"]').textContent = rows.dataset.activeLabel;
  }, 200);

  // ---- the jobs list (/jobs/) ----

  const jobTable = document.getElementById("job-table");
  const refreshTable = coalesce(async () => {
    const doc = await fetchDocument(location.href);
    const body = doc.querySelector("#job-table tbody");
    if (body) jobTable.querySelector("tbody").replaceWith(document.adoptNode(body));
  }, 300);

  function onListMessage(message) {
    if (message.type !== "progress" && message.type !== "finished") return;
    live.received += 1;
    const job = message.payload;
    applyJob(job);
    const rows = document.getElementById("task-panel-rows");
    // A job of the user's that the panel lacks (started in another tab), or one that just ended
    // (it moves from the running rows to the finished ones): fetch the rows again.
    if (message.mine && (message.type === "finished" || !rows.querySelector('[data-job-id="' + job.id + '"]'))) {
      refreshPanel();
    }
    if (jobTable) {
      const shown = jobTable.querySelector('tr[data-job-id="' + job.id + '"]');
      const firstPage = !new URLSearchParams(location.search).get("page");
      if ((shown && message.type === "finished") || (!shown && firstPage && job.status === "queued")) refreshTable();
    }
  }

  const panelLive = document.getElementById("task-panel-live");
  follow("/ws/jobs/", {
    open(reconnected) {
      live.connected = true;
      panelLive.classList.add("on");
      if (reconnected) { refreshPanel(); if (jobTable) refreshTable(); } // what happened while away
    },
    message: onListMessage,
    close() { live.connected = false; panelLive.classList.remove("on"); },
  });

  // ---- one job's page (/jobs/<id>/) ----

  const page = document.getElementById("job-page");
  if (!page) return;
  const jobId = page.dataset.jobId;
  const log = document.getElementById("job-log");
  const follows = document.getElementById("job-log-follow");
  const timeFormat = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZone: log.dataset.timeZone || undefined,
  });
  let lastLineId = Number(log.dataset.lastLineId) || 0;
  let status = page.dataset.status;

  function atBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 24; }
  // Follow new lines while the reader is at the end; someone scrolled up to read is left in peace.
  log.addEventListener("scroll", () => { follows.checked = atBottom(); });
  if (follows.checked) log.scrollTop = log.scrollHeight;

  function appendLines(lines) {
    const fresh = lines.filter((line) => line.id > lastLineId);
    if (!fresh.length) return;
    const items = document.createDocumentFragment();
    fresh.forEach((line) => {
      const item = document.createElement("li");
      item.dataset.lineId = line.id;
      const time = document.createElement("time");
      time.dateTime = line.at;
      time.textContent = timeFormat.format(new Date(line.at));
      const text = document.createElement("span");
      text.className = "job-log-text";
      text.textContent = line.line;
      item.append(time, text);
      items.append(item);
    });
    lastLineId = fresh[fresh.length - 1].id;
    live.logLines += fresh.length;
    log.append(items);
    document.getElementById("job-log-empty").classList.add("hidden");
    if (follows.checked) log.scrollTop = log.scrollHeight;
  }

  // The log API is the truth (ids, nothing missed); pushes say "there is more" and carry the line.
  const fetchLog = coalesce(async () => {
    for (;;) {
      const response = await fetch(page.dataset.logUrl + "?after=" + lastLineId, { credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      appendLines(data.lines);
      if (data.status !== status && TERMINAL.includes(data.status)) refreshSummary();
      if (!data.more) return;
    }
  }, 100);

  // The header, outcome and facts come from the server (translated error, result link, times).
  const refreshSummary = coalesce(async () => {
    const doc = await fetchDocument(location.href);
    const fresh = doc.getElementById("job-summary");
    const freshPage = doc.getElementById("job-page");
    if (!fresh || !freshPage) return;
    status = freshPage.dataset.status;
    page.dataset.status = status;
    const summary = document.getElementById("job-summary");
    // While the job runs the bar follows the stream alone: this page was rendered a moment ago and
    // can be older than the last push already shown (the bar would step back). Once the job has
    // ended nothing changes any more, and the server's card (with the average rate) is the truth.
    const liveCard = summary.querySelector(".job-progress-card");
    const freshCard = fresh.querySelector(".job-progress-card");
    if (!TERMINAL.includes(status) && liveCard && freshCard) freshCard.replaceWith(liveCard);
    summary.replaceWith(document.adoptNode(fresh));
    if (window.htmx) window.htmx.process(fresh);
  }, 100);

  // Rate and time left from the last ~20 s of progress (a copy slows down and speeds up).
  const samples = [];
  const elapsed = Number(page.dataset.elapsed);
  if (status === "running" && elapsed > 0 && Number(page.dataset.bytesDone) > 0) {
    samples.push([performance.now() - elapsed * 1000, 0]);
  }

  function setText(id, text) {
    const element = document.getElementById(id);
    if (element) element.textContent = text;
  }

  function showTransfer(job) {
    setText("job-phase", job.phase || "");
    if (!job.bytes_total) return;
    setText("job-bytes", fill(labels.bytes, { done: humanBytes(job.bytes_done), total: humanBytes(job.bytes_total) }));
    // Finished: the summary comes again from the server, with the average rate.
    if (job.status !== "running") return;
    const now = performance.now();
    samples.push([now, job.bytes_done]);
    while (samples.length > 2 && now - samples[1][0] > 20000) samples.shift();
    const [since, bytesThen] = samples[0];
    const seconds = (now - since) / 1000;
    let rate = "";
    let eta = "";
    if (seconds >= 0.5 && job.bytes_done > bytesThen) {
      const perSecond = (job.bytes_done - bytesThen) / seconds;
      rate = fill(labels.rate, { rate: humanBytes(perSecond) });
      if (job.bytes_done < job.bytes_total) {
        eta = fill(labels.eta, { time: clock((job.bytes_total - job.bytes_done) / perSecond) });
      }
    }
    setText("job-rate", rate);
    setText("job-eta", eta);
  }

  // The duration ticks while the job runs.
  setInterval(() => {
    const duration = document.getElementById("job-duration");
    if (status !== "running" || !duration || !duration.dataset.started) return;
    duration.textContent = clock((Date.now() - Date.parse(duration.dataset.started)) / 1000);
  }, 1000);

  // Cancel went through (htmx): the button waits for the job to stop instead of being pressed again.
  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt.id !== "job-cancel-form" || !event.detail.successful) return;
    const button = document.getElementById("job-cancel");
    if (button && event.detail.xhr.getResponseHeader("X-Action-Result") === "ok") {
      button.disabled = true;
      button.textContent = labels.cancelling;
    }
  });

  follow("/ws/jobs/" + jobId + "/", {
    open() {
      live.jobConnected = true;
      fetchLog(); // lines written before this stream was up (or while it was down)
    },
    message(message) {
      if (message.type === "progress") {
        applyJob(message.payload, true);
        showTransfer(message.payload);
        if (message.payload.status !== status && message.payload.status === "running") {
          status = "running";
          refreshSummary(); // started: the facts gain a start time and a worker
        }
      } else if (message.type === "log") {
        if (message.payload.id) appendLines([message.payload]);
        else fetchLog();
      } else if (message.type === "finished") {
        applyJob(message.payload, true);
        showTransfer(message.payload);
        fetchLog();
        refreshSummary();
      }
    },
    close() { live.jobConnected = false; },
  });
})();

// Live inventory: follows VM state pushed over the WebSocket named by <body data-live>, in place.
(function () {
  "use strict";
  const path = document.body.dataset.live;
  const indicator = document.getElementById("live-indicator");
  const live = (window.kvmpanelLive = { connected: false, received: 0 });
  if (!path) return;
  // Labels in this page's language; pushed messages carry values only (see context_processors.py).
  const labelsNode = document.getElementById("live-labels");
  const labels = labelsNode ? JSON.parse(labelsNode.textContent) : {};
  const label = (key) => labels[key] || key;

  function mib(n) { return n + " MiB"; }

  function setText(scope, field, value) {
    scope.querySelectorAll('[data-field="' + field + '"]').forEach((el) => { el.textContent = value; });
  }

  function applyVm(vm) {
    const scopes = document.querySelectorAll('[data-vm-id="' + vm.id + '"]');
    if (!scopes.length) { if (!vm.deleted) refreshTable(); return; }
    scopes.forEach((scope) => {
      if (vm.deleted) {
        if (scope.tagName === "TR") scope.remove();
        else setText(scope, "state_label", label("deleted"));
        return;
      }
      scope.dataset.state = vm.state;
      scope.querySelectorAll('[data-field="state_label"]').forEach((el) => {
        el.textContent = vm.missing ? label("missing") : label(vm.state);
        el.className = "state state-" + vm.state + (vm.missing ? " state-missing" : "");
      });
      setText(scope, "name", vm.name);
      setText(scope, "state_reason", vm.state_reason ? label("reason-" + vm.state_reason) : "");
      setText(scope, "vcpus", vm.vcpus_current + "/" + vm.vcpus_max);
      setText(scope, "addresses", vm.addresses.join(" "));
      scope.querySelectorAll('[data-field="memory"]').forEach((el) => {
        el.textContent = scope.tagName === "TR" ? mib(vm.memory_current_mib) : mib(vm.memory_current_mib) + " / " + mib(vm.memory_max_mib);
      });
      setText(scope, "observed_at", vm.observed_at);
      scope.querySelectorAll("[data-show-states]").forEach((form) => {
        const states = form.dataset.showStates.split(" ");
        form.classList.toggle("hidden", vm.missing || !states.includes(vm.state));
      });
    });
    // The detail page keeps its action bar outside the header scope too.
    document.querySelectorAll("[data-vm-actions] [data-show-states]").forEach((form) => {
      if (!form.closest("[data-vm-id]")) {
        form.classList.toggle("hidden", vm.missing || !form.dataset.showStates.split(" ").includes(vm.state));
      }
    });
  }

  function applyHost(host) {
    document.querySelectorAll('[data-host-id="' + host.id + '"] [data-field="host_status"]').forEach((el) => {
      el.textContent = label("host-" + host.status);
      el.className = "status status-" + host.status;
      el.title = host.status_message || "";
    });
  }

  let refreshTimer = null;
  function refreshTable() {
    const table = document.getElementById("vm-table");
    if (!table || refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      const response = await fetch(location.href, { headers: { "X-Requested-With": "live" } });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const body = doc.querySelector("#vm-table tbody");
      if (body) { table.querySelector("tbody").replaceWith(body); if (window.htmx) window.htmx.process(table); }
    }, 300);
  }

  let delay = 500;
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
    const socket = new WebSocket(url);
    socket.onopen = () => { delay = 500; live.connected = true; if (indicator) indicator.classList.add("on"); };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "vm") { live.received += 1; applyVm(message.vm); }
      if (message.type === "host") { live.received += 1; applyHost(message.host); }
    };
    socket.onclose = (event) => {
      live.connected = false;
      if (indicator) indicator.classList.remove("on");
      if (event.code === 4401 || event.code === 4404) return; // not allowed: do not retry
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
})();

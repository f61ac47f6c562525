// The storage pages: confirmations for destructive forms, and the pool page's upload with a
// progress bar. The file is sent as the request body (no multipart copy), which the panel
// streams to the host through libvirt.
(function () {
  "use strict";

  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  const form = document.querySelector("form[data-upload]");
  if (!form) return;
  const labelsElement = document.getElementById("storage-labels");
  const labels = labelsElement ? JSON.parse(labelsElement.textContent) : {};
  const fileInput = form.querySelector("input[type=file]");
  const nameInput = form.querySelector("input[name=name]");
  const progress = form.querySelector("[data-upload-progress]");
  const status = form.querySelector("[data-upload-status]");
  const cancel = form.querySelector("[data-upload-cancel]");
  const submit = form.querySelector("button[type=submit]");
  const available = Number(form.dataset.available);
  const limit = Number(form.dataset.limit);

  function human(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (match, key) => (key in values ? values[key] : match));
  }

  function say(text, failed) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(failed));
  }

  // A volume name the panel accepts, from the file's name: ASCII letters, digits, '.', '_', '-'.
  function suggestName(fileName) {
    return fileName
      .replace(/[^A-Za-z0-9._-]+/g, "_")
      .replace(/\.{2,}/g, ".")
      .replace(/^[^A-Za-z0-9]+/, "")
      .slice(0, 63);
  }

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    if (file && !nameInput.value) nameInput.value = suggestName(file.name);
  });

  function busy(on) {
    submit.disabled = on;
    fileInput.disabled = on;
    nameInput.disabled = on;
    cancel.hidden = !on;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) return say(labels.choose, true);
    if (file.size > limit) return say(fill(labels.over_limit, { size: human(file.size), limit: human(limit) }), true);
    if (file.size > available) return say(fill(labels.too_big, { size: human(file.size), free: human(available) }), true);
    const name = nameInput.value.trim() || suggestName(file.name);
    const xhr = new XMLHttpRequest();
    const started = performance.now();
    xhr.open("POST", form.dataset.url + "?name=" + encodeURIComponent(name));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    xhr.upload.addEventListener("progress", (progressEvent) => {
      if (!progressEvent.lengthComputable) return;
      progress.max = progressEvent.total;
      progress.value = progressEvent.loaded;
      const seconds = Math.max((performance.now() - started) / 1000, 0.001);
      say(
        fill(labels.sending, {
          done: human(progressEvent.loaded),
          total: human(progressEvent.total),
          percent: Math.floor((100 * progressEvent.loaded) / progressEvent.total),
          speed: human(Math.round(progressEvent.loaded / seconds)),
        }),
      );
    });
    xhr.upload.addEventListener("load", () => {
      cancel.hidden = true; // every byte is on the panel: the host is writing, too late to take it back
      say(labels.writing);
    });
    xhr.addEventListener("load", () => {
      busy(false);
      if (xhr.status === 201) {
        say(labels.done);
        form.dataset.uploaded = name;
        window.setTimeout(() => window.location.reload(), 600);
        return;
      }
      let detail = xhr.statusText || String(xhr.status);
      try {
        detail = JSON.parse(xhr.responseText).detail || detail;
      } catch (error) {
        // not JSON (a proxy's error page): keep the status text
      }
      progress.hidden = true;
      say(labels.failed + " " + detail, true);
    });
    xhr.addEventListener("error", () => {
      busy(false);
      progress.hidden = true;
      say(labels.network, true);
    });
    xhr.addEventListener("abort", () => {
      busy(false);
      progress.hidden = true;
      say(labels.cancelled, true);
    });
    cancel.onclick = () => xhr.abort();
    progress.hidden = false;
    progress.value = 0;
    busy(true);
    xhr.send(file);
  });
})();

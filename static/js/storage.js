// The storage pages: confirmations for destructive forms, and the pool page's upload with a
// progress bar. The file goes in 16 MiB parts, one request each (the ASGI server holds a whole
// request body in memory, so one big request would cost the panel that much RAM); the panel
// streams each part to the host through libvirt. A broken connection resumes where it stopped.
(function () {
  "use strict";

  document.querySelectorAll("form[data-confirm]").forEach((confirmed) => {
    confirmed.addEventListener("submit", (event) => {
      if (!window.confirm(confirmed.dataset.confirm)) event.preventDefault();
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

  // app.css styles buttons display:inline-block, which beats the hidden attribute: use its class.
  function show(element, visible) {
    element.classList.toggle("hidden", !visible);
  }

  function busy(on) {
    submit.disabled = on;
    fileInput.disabled = on;
    nameInput.disabled = on;
    show(cancel, on);
  }

  const PART_BYTES = 16 * 1024 * 1024;
  const RETRIES = 3;
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  let current = null; // the XHR in flight
  let activeUpload = null; // the started upload's URL, so a cancel can abort it on the panel
  let cancelled = false;

  // One request; resolves with {status, body} (body parsed from JSON when it is JSON).
  function send(method, url, body, contentType, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      current = xhr;
      xhr.open(method, url);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", csrf);
      if (contentType) xhr.setRequestHeader("Content-Type", contentType);
      if (onProgress) xhr.upload.addEventListener("progress", onProgress);
      xhr.addEventListener("load", () => {
        let parsed = null;
        try {
          parsed = JSON.parse(xhr.responseText);
        } catch (error) {
          // not JSON (a proxy's error page): the status says enough
        }
        resolve({ status: xhr.status, body: parsed || { detail: xhr.statusText || String(xhr.status) } });
      });
      xhr.addEventListener("error", () => reject(new Error("network")));
      xhr.addEventListener("abort", () => reject(new Error("abort")));
      xhr.send(body);
    });
  }

  function showProgress(done, total, started) {
    progress.max = total;
    progress.value = done;
    const seconds = Math.max((performance.now() - started) / 1000, 0.001);
    say(
      fill(labels.sending, {
        done: human(done),
        total: human(total),
        percent: Math.floor((100 * done) / total),
        speed: human(Math.round(done / seconds)),
      }),
    );
  }

  async function upload(file, name) {
    const started = performance.now();
    const begun = await send(
      "POST",
      form.dataset.url,
      JSON.stringify({ name: name, size: file.size }),
      "application/json",
    );
    if (begun.status !== 201) throw new Error(begun.body.detail);
    const partBytes = begun.body.part_bytes || PART_BYTES;
    const partUrl = form.dataset.url + begun.body.id + "/";
    activeUpload = partUrl;
    showProgress(0, file.size, started);
    let offset = 0;
    let retries = 0;
    while (offset < file.size) {
      const end = Math.min(offset + partBytes, file.size);
      if (end === file.size) show(cancel, false); // the last part finishes the volume: too late to take back
      let answer;
      try {
        answer = await send(
          "PUT",
          partUrl + "?offset=" + offset,
          file.slice(offset, end),
          "application/octet-stream",
          (event) => showProgress(offset + event.loaded, file.size, started),
        );
      } catch (error) {
        if (cancelled || retries >= RETRIES) throw error;
        retries += 1;
        say(fill(labels.resuming, { done: human(offset) }), true);
        await new Promise((resume) => window.setTimeout(resume, 1000 * retries));
        const state = await send("GET", partUrl);
        if (state.status !== 200) throw new Error(state.body.detail);
        offset = state.body.received_bytes;
        continue;
      }
      if (answer.status === 409 && answer.body.code === "offset") {
        const state = await send("GET", partUrl); // a part we sent may have arrived after all
        if (state.status !== 200) throw new Error(state.body.detail);
        offset = state.body.received_bytes;
        continue;
      }
      if (answer.status !== 200) throw new Error(answer.body.detail);
      retries = 0;
      offset = answer.body.upload.received_bytes;
      if (answer.body.volume) return answer.body.volume;
      if (end < file.size) showProgress(offset, file.size, started);
    }
    return null;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) return say(labels.choose, true);
    if (file.size > limit) return say(fill(labels.over_limit, { size: human(file.size), limit: human(limit) }), true);
    if (file.size > available) return say(fill(labels.too_big, { size: human(file.size), free: human(available) }), true);
    const name = nameInput.value.trim() || suggestName(file.name);
    cancelled = false;
    show(progress, true);
    progress.value = 0;
    busy(true);
    upload(file, name).then(
      () => {
        activeUpload = null;
        busy(false);
        show(cancel, false);
        say(labels.done);
        form.dataset.uploaded = name;
        window.setTimeout(() => window.location.reload(), 600);
      },
      (error) => {
        busy(false);
        show(progress, false);
        if (cancelled) {
          say(labels.cancelled, true);
          window.setTimeout(() => window.location.reload(), 600);
        } else {
          say(labels.failed + " " + (error.message === "network" ? labels.network : error.message), true);
        }
      },
    );
  });

  cancel.addEventListener("click", () => {
    cancelled = true;
    if (current) current.abort();
    if (activeUpload) {
      // Abort it on the panel too: its half-filled volume is deleted.
      fetch(activeUpload, { method: "DELETE", headers: { "X-CSRFToken": csrf }, credentials: "same-origin" });
      activeUpload = null;
    }
  });
})();

// Small behaviours every page has, kept out of inline attributes so pages can run under a strict CSP.
(function () {
  "use strict";
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
})();

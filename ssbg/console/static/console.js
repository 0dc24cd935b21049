// SSBG console: progressive enhancement only — every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A filter <select> marked data-autosubmit submits its form when changed.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
});

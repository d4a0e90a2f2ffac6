// Audit Trail dashboard: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function ready() {
    // Custom dates only matter for a custom range: show them only then.
    var range = document.getElementById("range");
    var custom = document.querySelectorAll("[data-custom-range]");
    function sync() {
      var on = range.value === "custom";
      custom.forEach(function (field) {
        field.toggleAttribute("data-inactive", !on);
        var input = field.querySelector("input");
        if (input) input.disabled = !on;
      });
    }
    if (range) {
      range.addEventListener("change", function () {
        sync();
        var from = document.getElementById("from");
        if (range.value === "custom" && from) from.focus();
      });
      sync();
    }

    // On a narrow window the filters start folded, so the events come first.
    var panel = document.getElementById("filter-panel");
    if (panel && window.matchMedia("(max-width: 860px)").matches &&
        !document.querySelector(".state-error")) {
      panel.open = false;
    }

    // Whole rows open their event for pointer users; the time link is the keyboard path.
    document.querySelectorAll("tr[data-href]").forEach(function (row) {
      row.addEventListener("click", function (event) {
        if (event.target.closest("a, button, input, select, label")) return;
        if (String(window.getSelection())) return;
        window.location.assign(row.getAttribute("data-href"));
      });
    });

    // The export downloads in the background: say so for a moment.
    var form = document.getElementById("export-form");
    var button = document.getElementById("export-button");
    if (form && button) {
      form.addEventListener("submit", function () {
        button.classList.add("busy");
        button.setAttribute("aria-busy", "true");
        window.setTimeout(function () {
          button.classList.remove("busy");
          button.removeAttribute("aria-busy");
        }, 2500);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();

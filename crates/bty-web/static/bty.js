// bty-web's own behaviour. No inline scripts anywhere (the Content-Security-Policy forbids
// them): confirmations come from data-confirm attributes, live state from htmx's SSE events.
(function () {
  "use strict";

  // Ask before destructive form posts.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form && form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
    }
  });

  function setLive(on) {
    var el = document.getElementById("live");
    if (!el) return;
    el.textContent = on ? "live" : "offline";
    el.className = "live " + (on ? "on" : "off");
  }
  document.addEventListener("htmx:sseOpen", function () { setLive(true); });
  document.addEventListener("htmx:sseError", function () { setLive(false); });

  // Briefly mark what a live update replaced.
  document.addEventListener("htmx:sseMessage", function (ev) {
    var el = ev.target;
    if (!el || !el.classList) return;
    el.classList.remove("swapped");
    void el.offsetWidth;
    el.classList.add("swapped");
  });

  // The machine form: dim the fields the chosen boot mode does not use.
  function dimFields() {
    var mode = document.getElementById("boot_mode");
    if (!mode) return;
    var flashes = mode.value === "bty-flash-once" || mode.value === "bty-flash-always";
    var uses = {
      bty_image_ref: flashes || mode.value === "bty-tui",
      target_disk_serial: flashes,
      sanboot_drive: mode.value === "ipxe-exit"
    };
    Object.keys(uses).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.classList.toggle("unused", !uses[id]);
    });
  }
  document.addEventListener("change", function (ev) {
    if (ev.target && ev.target.id === "boot_mode") dimFields();
  });
  document.addEventListener("DOMContentLoaded", dimFields);
})();

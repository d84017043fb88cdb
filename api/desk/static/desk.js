// Small helpers for the desk; every page works without them.
"use strict";

// Filters and the as-of picker apply as soon as a choice is made with the mouse or a
// finger. From the keyboard the arrow keys only move through the choices, and the form's
// button applies them: a page that reloads on every arrow key cannot be used.
document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
  var pointer = false;
  form.addEventListener("pointerdown", function () { pointer = true; });
  form.addEventListener("keydown", function () { pointer = false; });
  form.addEventListener("change", function (event) {
    var choice = event.target.matches("select, input[type=checkbox]");
    if (choice && pointer) {
      form.requestSubmit ? form.requestSubmit() : form.submit();
    }
  });
});

// The first visit takes the browser's time zone, once; the form on every page changes it.
(function () {
  if (document.cookie.split("; ").some(function (c) { return c.indexOf("desk_tz=") === 0; })) {
    return;
  }
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  // Zone names are letters, digits and / _ + -: nothing a cookie needs escaped.
  if (!zone || !/^[A-Za-z0-9\/_+-]+$/.test(zone)) {
    return;
  }
  document.cookie = "desk_tz=" + zone + "; path=/desk; max-age=31536000; samesite=strict";
  var stored = document.cookie.indexOf("desk_tz=") !== -1;
  if (stored && zone !== "UTC" && !document.querySelector("[data-zone-input][value='" + zone + "']")) {
    window.location.reload();
  }
})();

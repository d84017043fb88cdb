// Small helpers for the desk; every page works without them.
"use strict";

// Filters and the as-of picker apply as soon as a choice changes.
document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
  form.addEventListener("change", function (event) {
    if (event.target.matches("select, input[type=checkbox], input[type=date], input[type=month]")) {
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

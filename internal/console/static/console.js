// hookline console: progressive enhancement only; every page works without this file.
// On the webhook form, show only the fields the chosen scope uses (groupId for GROUP, userId for
// USER, resource for RESOURCE). Fields hidden this way are cleared on submit so that the API
// server does not reject a value the user can no longer see.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var scope = document.getElementById("scope");
  if (!scope) {
    return;
  }
  var scoped = document.querySelectorAll("[data-scope]");
  function sync() {
    scoped.forEach(function (el) {
      el.hidden = el.getAttribute("data-scope") !== scope.value;
    });
  }
  scope.addEventListener("change", sync);
  sync();
  var form = scope.form;
  form.addEventListener("submit", function () {
    scoped.forEach(function (el) {
      if (el.hidden) {
        el.querySelectorAll("input, select").forEach(function (input) {
          if (!input.readOnly) {
            input.value = "";
          }
        });
      }
    });
  });
});

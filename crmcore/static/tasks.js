// Complete a task in place: the same POST form, sent with fetch; the row fades out and
// the group's count goes down. Without this script the form posts and the page reloads.
(function () {
  "use strict";
  var total = document.querySelector("[data-task-total]");

  function decrement(el) {
    if (!el) return;
    var n = parseInt(el.textContent, 10);
    if (!isNaN(n) && n > 0) el.textContent = el.textContent.replace(String(n), String(n - 1));
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("js-complete")) return;
    event.preventDefault();
    var row = form.closest("[data-task]");
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (data) {
      if (row) {
        row.classList.add("done");
        var group = row.closest("[data-group]");
        decrement(group && group.querySelector("[data-count]"));
        decrement(total);
        if (total) total.setAttribute("data-message", data.message);
        setTimeout(function () {
          var list = row.parentNode;
          row.remove();
          if (list && !list.children.length && group) {
            var p = document.createElement("p");
            p.className = "muted";
            p.textContent = "All done here.";
            list.replaceWith(p);
          }
        }, 700);
      }
    }).catch(function () {
      form.submit(); // let the server answer with its page (errors included)
    });
  });
})();

// Progressive enhancement of the deal pages; every form works without it.
// - the stage list shows only the chosen pipeline's stages;
// - the lost reason shows only when a lost stage is chosen (or it holds text/an error);
// - company/contact selects get a search box (for tenants with more than the list holds);
// - forms with data-confirm ask first.
(function () {
  "use strict";

  function stageOptions(select) {
    return Array.prototype.slice.call(select.querySelectorAll("option[data-pipeline]"));
  }

  function syncPipeline(form) {
    var pipeline = form.querySelector("select[name=pipeline_id]");
    var stage = form.querySelector("select[data-stage-select]");
    if (!pipeline || !stage) return;
    var chosen = pipeline.value;
    Array.prototype.forEach.call(stage.querySelectorAll("optgroup"), function (group) {
      var other = chosen && group.getAttribute("data-pipeline") !== chosen;
      group.hidden = other;
      group.disabled = other;
    });
    var selected = stage.options[stage.selectedIndex];
    if (selected && selected.disabled === false && selected.parentNode.disabled) selected = null;
    if (!selected || (selected.getAttribute("data-pipeline") && selected.getAttribute("data-pipeline") !== chosen)) {
      var blank = stage.querySelector("option[value='']");
      var first = stageOptions(stage).filter(function (o) { return o.getAttribute("data-pipeline") === chosen; })[0];
      (blank || first || {}).selected = true;
    }
  }

  function syncLost(form) {
    var stage = form.querySelector("select[data-stage-select]");
    var box = form.querySelector("[data-lost-reason]");
    if (!stage || !box) return;
    var option = stage.options[stage.selectedIndex];
    var lost = option && option.getAttribute("data-lost") === "1";
    var text = box.querySelector("textarea");
    var keep = (text && text.value.trim() !== "") || box.querySelector(".field-error");
    box.hidden = !(lost || keep);
    if (text) text.required = !!lost;
  }

  function syncProbability(form) {
    var stage = form.querySelector("select[data-stage-select]");
    var probability = form.querySelector("input[name=probability]");
    if (!stage || !probability) return;
    var option = stage.options[stage.selectedIndex];
    if (option && option.getAttribute("data-probability") !== null) {
      probability.placeholder = option.getAttribute("data-probability");
    }
  }

  function lookup(field) {
    var select = field.querySelector("select");
    var url = field.getAttribute("data-lookup-url");
    var kind = field.getAttribute("data-lookup");
    var search = document.createElement("input");
    search.type = "search";
    search.placeholder = "Search " + (kind === "company" ? "companies" : "contacts") + "…";
    search.setAttribute("aria-label", search.placeholder);
    search.className = "lookup-search";
    select.parentNode.insertBefore(search, select);
    var timer = null;
    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch(url + "?kind=" + encodeURIComponent(kind) + "&q=" + encodeURIComponent(search.value), {
          headers: { Accept: "application/json" }, credentials: "same-origin"
        }).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
          if (!data) return;
          var current = select.options[select.selectedIndex];
          var keep = [select.options[0]];
          if (current && current.value) keep.push(current);
          select.innerHTML = "";
          keep.forEach(function (o) { select.appendChild(o); });
          data.items.forEach(function (item) {
            if (current && String(item.id) === current.value) return;
            var o = document.createElement("option");
            o.value = item.id;
            o.textContent = item.label;
            select.appendChild(o);
          });
          if (data.items.length === 1 && !(current && current.value)) select.value = String(data.items[0].id);
        });
      }, 250);
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("form"), function (form) {
    var stage = form.querySelector("select[data-stage-select]");
    var pipeline = form.querySelector("select[name=pipeline_id]");
    if (stage) {
      if (pipeline) {
        syncPipeline(form);
        pipeline.addEventListener("change", function () { syncPipeline(form); syncLost(form); syncProbability(form); });
      }
      syncLost(form);
      syncProbability(form);
      stage.addEventListener("change", function () { syncLost(form); syncProbability(form); });
    }
    var question = form.getAttribute("data-confirm");
    if (question) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(question)) event.preventDefault();
      });
    }
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-lookup]"), lookup);
})();

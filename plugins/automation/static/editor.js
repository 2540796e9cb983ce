/* The rule editor (templates/automation/edit.html): add and remove condition and step
 * rows, show each step's params and the chosen trigger's options, and the fields of the
 * chosen record kind. The form posts plain fields; the server builds the rule. */
(function () {
  "use strict";
  var form = document.querySelector(".auto-editor");
  if (!form) return;
  var fields = JSON.parse(form.dataset.fields || "{}");
  var params = JSON.parse(form.dataset.params || "{}");
  var options = JSON.parse(form.dataset.options || "{}");

  function showParams(row) {
    var action = row.querySelector("[data-action-select]").value;
    row.querySelectorAll("[data-param]").forEach(function (label) {
      label.hidden = (params[action] || []).indexOf(label.dataset.param) < 0;
    });
  }

  function showOptions() {
    var trigger = form.querySelector("[data-trigger-select]").value;
    form.querySelectorAll("[data-option]").forEach(function (label) {
      label.hidden = (options[trigger] || []).indexOf(label.dataset.option) < 0;
    });
  }

  function fillFields(select) {
    var entity = form.querySelector("[data-entity-select]").value;
    var current = select.value;
    while (select.options.length > 1) select.remove(1);
    (fields[entity] || []).forEach(function (name) {
      var option = document.createElement("option");
      option.value = option.textContent = name;
      if (name === current) option.selected = true;
      select.appendChild(option);
    });
  }

  function add(templateSelector, listSelector) {
    var template = form.querySelector(templateSelector);
    var list = form.querySelector(listSelector);
    var row = template.content.firstElementChild.cloneNode(true);
    list.appendChild(row);
    if (row.matches("[data-step-row]")) showParams(row);
    var fieldSelect = row.querySelector("[data-field-select]");
    if (fieldSelect) fillFields(fieldSelect);
    return row;
  }

  form.addEventListener("click", function (event) {
    var target = event.target;
    if (target.matches("[data-add-condition]")) add("[data-condition-template]", "[data-conditions]");
    else if (target.matches("[data-add-step]")) add("[data-step-template]", "[data-steps]");
    else if (target.matches("[data-remove-row]")) target.closest(".auto-row").remove();
  });
  form.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-action-select]")) showParams(target.closest("[data-step-row]"));
    else if (target.matches("[data-trigger-select]")) showOptions();
    else if (target.matches("[data-entity-select]")) form.querySelectorAll("[data-field-select]").forEach(fillFields);
  });
  form.querySelectorAll("[data-step-row]").forEach(showParams);
  showOptions();
})();

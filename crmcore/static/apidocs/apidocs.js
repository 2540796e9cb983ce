/* Starts Swagger UI on /api/v1/docs (crmcore/api_docs.py). A file, not an inline
   script, so that the page's Content-Security-Policy can forbid inline scripts. */
window.addEventListener("load", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    deepLinking: true,
    filter: true,
    displayRequestDuration: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    // Never ask the public validator service: the page talks to its own origin only.
    validatorUrl: null,
    // A pasted token lives in this tab only (not in localStorage).
    persistAuthorization: false
  });
});

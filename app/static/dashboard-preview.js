// The branding editor's live preview: the card redraws as colours and the logo text change, before saving.
"use strict";
(function () {
  const card = document.getElementById("card-preview");
  const logoText = document.getElementById("preview-logo-text");
  if (!card) return;
  const variables = { background_color: "--card-bg", foreground_color: "--card-fg", label_color: "--card-label" };
  // The saved colours come as data attributes: the page's CSP allows no inline style.
  Object.keys(variables).forEach(function (name) { card.style.setProperty(variables[name], card.dataset[name]); });
  document.querySelectorAll("[data-preview]").forEach(function (input) {
    input.addEventListener("input", function () {
      const name = input.dataset.preview;
      if (variables[name]) card.style.setProperty(variables[name], input.value);
      else if (name === "logo_text") logoText.textContent = input.value || logoText.dataset.default;
    });
  });
})();

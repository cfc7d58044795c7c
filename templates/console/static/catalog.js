// The price form, progressively: "Add a row" copies the tier table's last row with the
// next number, and the amount fields a pricing model does not use are hidden (and not
// sent). Without this script the form still works: every field shows, blank tier rows
// are posted and skipped.
"use strict";

function showFieldsOf(model) {
  document.querySelectorAll("[data-for]").forEach((part) => {
    const used = part.dataset.for.split(" ").includes(model);
    const refused = part.querySelector(".field-error") !== null;  // never hide an error
    part.hidden = !used && !refused;
    part.querySelectorAll("input, select").forEach((input) => { input.disabled = part.hidden; });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const models = document.querySelectorAll("input[name=pricing_model]");
  models.forEach((radio) => radio.addEventListener("change", () => showFieldsOf(radio.value)));
  const chosen = document.querySelector("input[name=pricing_model]:checked");
  if (chosen) showFieldsOf(chosen.value);

  const button = document.getElementById("add-tier");
  const body = document.getElementById("tier-rows");
  if (!button || !body) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    const rows = body.querySelectorAll("tr.tier-row");
    const last = rows[rows.length - 1];
    const row = last.cloneNode(true);
    const next = rows.length;
    row.querySelector("th").textContent = String(next + 1);
    row.querySelectorAll("p.field-error").forEach((p) => p.remove());
    row.querySelectorAll("td").forEach((cell) => cell.classList.remove("invalid"));
    row.querySelectorAll("input").forEach((input) => {
      input.name = input.name.replace(/^tier-\d+-/, `tier-${next}-`);
      input.id = `f-${input.name}`;
      input.value = "";
      input.removeAttribute("placeholder");
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
      input.setAttribute("aria-label", input.getAttribute("aria-label").replace(/\d+/, String(next + 1)));
    });
    body.appendChild(row);
    row.querySelector("input").focus();
  });
});

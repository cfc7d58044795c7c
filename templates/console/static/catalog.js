// The price form's tier table: "Add a row" copies the last row with the next number.
// Without this script the form still works: it posts its blank rows, which are skipped.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
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

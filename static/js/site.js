// The phone menu: the header's button shows and hides the navigation (desktop shows it always).
document.addEventListener("click", (e) => {
  const button = e.target.closest(".menu-button");
  if (button) {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    document.getElementById(button.getAttribute("aria-controls")).classList.toggle("open", open);
  }
  const copy = e.target.closest("[data-copy]");
  if (copy && navigator.clipboard) {
    navigator.clipboard.writeText(copy.dataset.copy).then(() => { copy.textContent = "Copied"; });
  }
});
// The dashboard's filters sit in a panel that phones open on demand; wider screens show it open.
if (window.matchMedia("(min-width: 44rem)").matches) {
  for (const panel of document.querySelectorAll("details.filters-panel")) panel.open = true;
}

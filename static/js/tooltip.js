// Escape hides an open price detail without moving focus or the pointer (WCAG 1.4.13); the
// next focus change or pointer entry shows details again.
document.addEventListener("keydown", (e) => {
  const tip = e.key === "Escape" && document.activeElement.closest(".fxw");
  if (tip) tip.classList.add("dismissed");
});
for (const type of ["focusin", "focusout", "mouseover"]) {
  document.addEventListener(type, () => {
    for (const el of document.querySelectorAll(".fxw.dismissed")) el.classList.remove("dismissed");
  });
}

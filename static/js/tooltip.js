// Escape hides an open price detail without moving focus (WCAG 1.4.13: dismissible).
document.addEventListener("keydown", (e) => {
  const tip = e.key === "Escape" && document.activeElement.closest(".fxw");
  if (tip) tip.classList.add("dismissed");
});
document.addEventListener("focusin", () => {
  for (const el of document.querySelectorAll(".fxw.dismissed")) el.classList.remove("dismissed");
});

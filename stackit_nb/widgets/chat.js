// The message box of stackit_nb.widgets.ChatWidget: a textarea where Enter sends and
// Shift+Enter starts a new line. ipywidgets' Textarea has no key events, hence this widget.
// The text is synced as `value`; Enter sends {event: "submit", text} as a custom message
// (carrying the text, so the kernel never acts on a stale `value`).

function render({ model, el }) {
  const box = document.createElement("textarea");
  box.className = "snb-composer jp-mod-styled";
  box.rows = 3;
  box.style.cssText = "width:100%;box-sizing:border-box;resize:vertical;font:inherit;padding:4px";
  // JupyterLab's shortcuts (Shift+Enter runs the cell, A/B/D...) must not fire while typing here
  box.setAttribute("data-lm-suppress-shortcuts", "true");

  const sync = () => {
    if (box.value !== model.get("value")) box.value = model.get("value");
    box.placeholder = model.get("placeholder");
    box.disabled = model.get("disabled");
  };
  box.addEventListener("input", () => {
    model.set("value", box.value);
    model.save_changes();
  });
  box.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    event.stopPropagation();
    if (!box.value.trim()) return;
    model.send({ event: "submit", text: box.value });
    // Clear here too: the kernel's own reset could arrive before the last typed value and
    // be overwritten by it, leaving the sent text in the box.
    box.value = "";
    model.set("value", "");
    model.save_changes();
  });
  model.on("change:value change:placeholder change:disabled", sync);
  sync();
  el.append(box);
  return () => model.off("change:value change:placeholder change:disabled", sync);
}

export default { render };

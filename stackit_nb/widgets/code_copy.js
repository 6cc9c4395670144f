// Copy buttons of code blocks (stackit_nb.widgets._code_highlight), wherever they are on the
// page: live replies, a chat's history, saved copies. Loaded with the first stackit_nb widget;
// the widget's stylesheet shows the buttons, which saved copies keep hidden where none of this
// code runs (no dead button in an export). One listener per page, however often this loads.

function copyBySelection(text) {
  // where the Clipboard API is missing (a page served over plain http from another host)
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  try {
    return document.execCommand("copy");
  } catch {
    return false;
  } finally {
    area.remove();
  }
}

async function copyCode(button) {
  const code = button.closest(".snb-code")?.querySelector("pre code");
  if (!code) return;
  // the element's text is exactly the code: highlighting only wraps it in spans
  const text = code.textContent;
  let copied;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    copied = copyBySelection(text);
  }
  button.textContent = copied ? "Copied" : "Copy failed";
  clearTimeout(button.snbReset);
  button.snbReset = setTimeout(() => (button.textContent = "Copy"), 1500);
}

if (!window.snbCodeCopy) {
  window.snbCodeCopy = true;
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest(".snb-copy");
    if (button) copyCode(button);
  });
}

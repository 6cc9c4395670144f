// Live view of a streamed reply (stackit_nb.widgets.StreamingDisplay).
// The kernel sends {ops: [...]} custom messages; _markdown.HtmlDiff documents the operations.
// State is kept per model (not per view), so a view opened later shows everything so far.
// anywidget gives initialize() and every render() a different wrapper of the model: the state
// is found by the model's `_key` (set by the kernel), not by the wrapper object.

const stores = new Map();

function storeOf(model) {
  const key = model.get("_key");
  let store = stores.get(key);
  if (!store) {
    store = { sections: [], footer: "", error: "", handover: false, views: new Set() };
    stores.set(key, store);
  }
  return store;
}

function apply(store, op) {
  const [kind, id] = op;
  if (kind === "s") {
    const section = { id, shell: op[2], frozen: "", tail: "", closed: false };
    store.sections[id] = section;
    return { kind, section };
  }
  const section = store.sections[id];
  if (kind === "b" && section) {
    const tail = section.tail.slice(0, op[2]) + op[3];
    const frozen = tail.slice(0, op[4]);
    section.frozen += frozen;
    section.tail = tail.slice(op[4]);
    return { kind, section, frozen };
  }
  if (kind === "c" && section) {
    section.closed = true;
    return { kind, section };
  }
  if (kind === "f") store.footer = op[1];
  if (kind === "e") store.error = op[1];
  if (kind === "h") store.handover = true;
  return { kind };
}

function initialize({ model }) {
  const store = storeOf(model);
  const onMessage = (message) => {
    if (!message || !Array.isArray(message.ops)) return;
    const effects = message.ops.map((op) => apply(store, op));
    for (const view of store.views) view(effects);
  };
  model.on("msg:custom", onMessage);
  return () => {
    model.off("msg:custom", onMessage);
    stores.delete(model.get("_key"));
  };
}

function fragment(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.content;
}

function render({ model, el }) {
  const store = storeOf(model);
  const root = document.createElement("div");
  // JupyterLab's Markdown styles, so the live view looks like the saved one
  root.className = "snb-reply snb-live jp-RenderedHTMLCommon";
  const body = document.createElement("div");
  const error = document.createElement("div");
  const footer = document.createElement("div");
  root.append(body, error, footer);
  el.append(root);
  const nodes = new Map();

  const addSection = (section) => {
    const shell = fragment(section.shell).firstElementChild;
    const target = shell.matches(".snb-body") ? shell : shell.querySelector(".snb-body");
    const frozen = document.createElement("div");
    const open = document.createElement("div");
    target.append(frozen, open);
    body.append(shell);
    nodes.set(section.id, { shell, frozen, open });
  };
  const close = (section) => {
    const node = nodes.get(section.id);
    if (node && node.shell.tagName === "DETAILS") node.shell.open = false;
  };
  const handover = () => {
    // the kernel displayed the finished reply as a plain HTML output right after this one
    el.style.display = "none";
    const child = el.closest(".jp-OutputArea-child");
    if (child) child.style.display = "none";
  };
  const sync = () => {
    root.classList.toggle("snb-waiting", store.sections.length === 0 && !store.error);
    error.innerHTML = store.error;
    footer.innerHTML = store.footer;
  };

  for (const section of store.sections) {
    if (!section) continue;
    addSection(section);
    const node = nodes.get(section.id);
    node.frozen.innerHTML = section.frozen;
    node.open.innerHTML = section.tail;
    if (section.closed) close(section);
  }
  sync();
  if (store.handover) handover();

  const update = (effects) => {
    for (const effect of effects) {
      const { kind, section } = effect;
      if (kind === "s") addSection(section);
      else if (kind === "b") {
        const node = nodes.get(section.id);
        if (effect.frozen) node.frozen.append(fragment(effect.frozen));
        node.open.innerHTML = section.tail;
      } else if (kind === "c") close(section);
      else if (kind === "h") handover();
    }
    sync();
  };
  store.views.add(update);
  return () => store.views.delete(update);
}

export default { initialize, render };

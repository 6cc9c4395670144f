// The upload button of stackit_nb.widgets.ImageUpload; upload.py describes the messages.
// A Jupyter server drops a websocket message over its limit (10 MiB by default) without an
// error, so each chosen file is read in parts (File.slice) and sent as custom messages with one
// binary buffer each, the next part only once the kernel has answered: no message comes near the
// limit, only one part is in memory at a time, and the progress shown is what the kernel has.
// A file over `max_bytes` is refused here, at once, and never sent.
// Files go one after the other, in the order chosen. Each has a line here until the kernel is
// finished with it; the gallery (kernel side) then shows its thumbnail or why it was refused.

const SLOW_MS = 10000; // no answer for this long: say why nothing moves
const ERROR_COLOUR = "#b00020";

// As stackit_nb.images.format_bytes (decimal units), exact halves rounded to even as there.
function formatBytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 999500) {
    const kb = Math.round(n / 1000);
    return `${n % 1000 === 500 && kb % 2 ? kb - 1 : kb} KB`;
  }
  let mb = (n / 1e6).toFixed(1);
  if (n % 500000 === 250000) {
    // n / 1e6 is exactly x.x5 (odd quarters): toFixed rounds that up, Python to even
    const tenths = Math.round(n / 1e5);
    mb = ((tenths % 2 ? tenths - 1 : tenths) / 10).toFixed(1);
  }
  return `${mb.replace(/\.0$/, "")} MB`;
}

let counter = 0;
function newId() {
  counter += 1;
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}-${counter}`;
}

function addLine(list) {
  const line = document.createElement("div");
  line.className = "snb-upload-file";
  const text = document.createElement("span");
  const note = document.createElement("span");
  note.style.color = "#8a5a00";
  line.append(text, note);
  list.append(line);
  return {
    show(message, state) {
      text.textContent = message;
      line.dataset.state = state;
      line.style.color = state === "refused" ? ERROR_COLOUR : "";
    },
    slow(on) {
      note.textContent = on
        ? " Waiting for the kernel: a running cell holds it up (the upload goes on when it" +
          " ends), or it was restarted (choose the file again)."
        : "";
    },
    remove() {
      line.remove();
    },
  };
}

// Every message is answered with {event: "ack", seq, done}; `waiting` maps each seq (unique
// across models and views) to whoever waits for that answer. The answers are listened to once
// per model, in initialize(), not per view: an upload goes on even if its view is removed.
const waiting = new Map();

function initialize({ model }) {
  const onMessage = (message) => {
    if (!message || message.event !== "ack") return;
    const resolve = waiting.get(message.seq);
    if (resolve) {
      waiting.delete(message.seq);
      resolve(message);
    }
  };
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}

function render({ model, el }) {
  const input = document.createElement("input");
  input.type = "file";
  input.multiple = true;
  input.hidden = true;
  const button = document.createElement("button");
  button.className = "jupyter-widgets jupyter-button widget-button snb-upload";
  const icon = document.createElement("i");
  icon.className = "fa fa-upload";
  const label = document.createElement("span");
  button.append(icon, label);
  const lines = document.createElement("div");
  lines.className = "snb-upload-files";
  // The lines go under the button and the Clear button beside it, across the whole width: `el`
  // steps aside (display: contents, in the widget's CSS), so they are items of the row itself,
  // which wraps.
  el.classList.add("snb-upload-host");

  const sync = () => {
    label.textContent = ` ${model.get("description")}`;
    input.accept = model.get("accept");
  };

  const request = (line, content, buffers) =>
    new Promise((resolve) => {
      const seq = newId();
      const slow = setTimeout(() => line.slow(true), SLOW_MS);
      waiting.set(seq, (ack) => {
        clearTimeout(slow);
        line.slow(false);
        resolve(ack);
      });
      model.send({ ...content, seq }, undefined, buffers ?? []);
    });

  const tooBig = (file) =>
    model
      .get("too_big")
      .replace("{name}", () => file.name)
      .replace("{size}", () => formatBytes(file.size));

  async function send(file, line) {
    const { name, size } = file;
    const id = newId();
    if (size > model.get("max_bytes")) {
      await request(line, { event: "refused", id, name, size });
      line.remove();
      return;
    }
    const chunkBytes = model.get("chunk_bytes");
    const chunks = Math.ceil(size / chunkBytes);
    const progress = (sent) =>
      line.show(`Sending ${name}: ${formatBytes(sent)} of ${formatBytes(size)}`, "sending");
    progress(0);
    let ack = await request(line, { event: "file", id, name, size, type: file.type, chunks });
    for (let index = 0; index < chunks && !ack.done; index++) {
      const end = Math.min(size, (index + 1) * chunkBytes);
      let buffer;
      try {
        buffer = await file.slice(index * chunkBytes, end).arrayBuffer();
      } catch (error) {
        const reason = `${error?.name ?? "Error"}: ${error?.message ?? error}`;
        ack = await request(line, { event: "abort", id, reason });
        break;
      }
      ack = await request(line, { event: "chunk", id, index }, [buffer]);
      progress(end);
    }
    if (!ack.done) {
      line.show(`Converting ${name} ...`, "converting");
      await request(line, { event: "end", id });
    }
    line.remove();
  }

  let queue = Promise.resolve();
  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = ""; // choosing the same file again is a change too
    for (const file of files) {
      const line = addLine(lines);
      if (file.size > model.get("max_bytes")) line.show(tooBig(file), "refused");
      else line.show(`${file.name}: waiting to be sent (${formatBytes(file.size)})`, "queued");
      queue = queue.then(() =>
        send(file, line).catch((error) => line.show(`${file.name}: ${error}`, "refused")),
      );
    }
  });
  button.addEventListener("click", () => input.click());

  model.on("change:description change:accept", sync);
  sync();
  el.append(button, input, lines);
  return () => model.off("change:description change:accept", sync);
}

export default { initialize, render };

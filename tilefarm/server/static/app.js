// tilefarm's dashboard: the jobs table from the server-sent events of /api/events, and the
// selected job's frames, video, timings, failures and log from /api/jobs/<job>.
"use strict";
const $ = (id) => document.getElementById(id);
let selected = null;
let lastDetail = "";

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: body === undefined ? "" : JSON.stringify(body)});
  const value = await response.json().catch(() => ({}));
  if (!response.ok) alert(value.error || response.statusText);
  return value;
}

function button(label, action, job) {
  const b = document.createElement("button");
  b.textContent = label;
  b.dataset.action = action;
  b.addEventListener("click", (event) => {
    event.stopPropagation();
    if (action === "rerender") {
      openRerender(job);
    } else {
      post(`/api/jobs/${job}/${action}`);
    }
  });
  return b;
}

// Re-render: a small dialog for the frames (all, or a list of frames and ranges).
function openRerender(job) {
  const dialog = $("rerender");
  dialog.dataset.job = job;
  $("rerender-title").textContent = `Re-render ${job}`;
  $("rerender-status").textContent = "";
  dialog.showModal();
}
$("rerender-frames").addEventListener("input", () => {
  $("rerender-form").elements.which.value = $("rerender-frames").value ? "some" : "all";
});
$("rerender-close").addEventListener("click", () => $("rerender").close());
$("rerender-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const job = $("rerender").dataset.job;
  const some = $("rerender-form").elements.which.value === "some";
  const frames = $("rerender-frames").value.trim();
  const response = await fetch(`/api/jobs/${encodeURIComponent(job)}/rerender`, {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(some && frames ? {frames} : {})});
  const value = await response.json().catch(() => ({}));
  $("rerender-status").textContent = response.ok
    ? `${value.datums} datum(s) of ${job} to run again` : value.error || response.statusText;
  $("rerender-status").className = response.ok ? "" : "error";
});

function renderJobs(jobs) {
  const body = $("jobs").querySelector("tbody");
  $("empty").hidden = jobs.length > 0;
  const seen = new Set();
  for (const job of jobs) {
    seen.add(job.job);
    let row = body.querySelector(`tr[data-job="${CSS.escape(job.job)}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.job = job.job;
      row.innerHTML = `<td class="name"></td><td class="state"></td><td><div class="bar"><div></div></div></td>
        <td class="frames"></td><td class="queuing"></td><td class="processing"></td><td class="elapsed"></td><td class="eta"></td>
        <td><input type="number" class="priority" step="1"></td><td class="workers"></td><td class="actions"></td>`;
      row.querySelector(".name").textContent = job.job;
      row.addEventListener("click", () => select(job.job));
      const priority = row.querySelector(".priority");
      priority.addEventListener("click", (e) => e.stopPropagation());
      priority.addEventListener("change", () =>
        post(`/api/jobs/${job.job}/priority`, {priority: parseInt(priority.value, 10) || 0}));
      const actions = row.querySelector(".actions");
      for (const [label, action] of [["Pause", "pause"], ["Resume", "resume"], ["Cancel", "cancel"], ["Re-render", "rerender"]]) {
        actions.appendChild(button(label, action, job.job));
      }
      body.appendChild(row);
    }
    const state = row.querySelector(".state");
    state.textContent = job.state;
    state.className = `state state-${job.state}`;
    row.querySelector(".bar > div").style.width = `${Math.round(100 * job.progress)}%`;
    row.querySelector(".bar").title = `${job.tasks_done}/${job.tasks_total} tasks, ${job.frames_done}/${job.frames_total} frames`;
    row.querySelector(".frames").textContent = `${job.frames_done}/${job.frames_total}`;
    row.querySelector(".queuing").textContent = clock(job.queuing_s);
    row.querySelector(".processing").textContent = clock(job.processing_s);
    row.querySelector(".elapsed").textContent = clock(job.elapsed_s);
    row.querySelector(".eta").textContent = clock(job.eta_s);
    const priority = row.querySelector(".priority");
    if (document.activeElement !== priority) priority.value = job.priority;
    row.querySelector(".workers").textContent = job.workers;
    row.classList.toggle("selected", job.job === selected);
  }
  for (const row of [...body.querySelectorAll("tr")]) if (!seen.has(row.dataset.job)) row.remove();
  if (selected) refreshDetail();
}

function select(job) {
  selected = job;
  lastDetail = "";
  for (const row of $("jobs").querySelectorAll("tbody tr")) row.classList.toggle("selected", row.dataset.job === job);
  refreshDetail();
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]];
  for (const [unit, scale] of units) if (bytes >= scale) return `${(bytes / scale).toFixed(1)} ${unit}`;
  return `${bytes} B`;
}

function chart(seconds) {
  const svg = $("chart");
  const entries = Object.entries(seconds);
  const max = Math.max(0.001, ...entries.map(([, s]) => s));
  const width = Math.min(40, 600 / Math.max(1, entries.length));
  svg.innerHTML = entries.map(([frame, s], i) =>
    `<rect x="${i * width + 1}" y="${120 - 110 * s / max}" width="${Math.max(1, width - 2)}" height="${110 * s / max}"><title>frame ${frame}: ${s.toFixed(2)} s</title></rect>`).join("");
}

async function refreshDetail() {
  const job = selected;
  const response = await fetch(`/api/jobs/${encodeURIComponent(job)}`);
  if (!response.ok || job !== selected) return;
  const detail = await response.json();
  const key = JSON.stringify([detail.state, detail.frames, detail.frames_in_flight, detail.video, detail.failures.length, detail.log.length, detail.peak_memory_per_frame]);
  if (key === lastDetail) return;
  lastDetail = key;
  $("detail").hidden = false;
  $("detail-title").textContent = `${detail.job}: ${detail.frames_done}/${detail.frames_total} frames, ${detail.tasks_done}/${detail.tasks_total} tasks, peak memory ${size(detail.peak_memory_bytes)}`;
  $("download").href = `/api/jobs/${encodeURIComponent(job)}/outputs.zip`;
  $("download").hidden = detail.frames_done === 0 && !detail.video;
  $("detail-error").hidden = !detail.error;
  $("detail-error").textContent = detail.error || "";
  // Finished frames, and frames in flight with the tiles rendered so far (black: to come).
  const grid = $("frames");
  if (grid.dataset.job !== job) { grid.innerHTML = ""; grid.dataset.job = job; }
  const wanted = new Map(detail.frames.map((f) => [f, "done"]));
  for (const [frame, tiles] of Object.entries(detail.frames_in_flight)) wanted.set(Number(frame), `tiles-${tiles}`);
  for (const img of [...grid.querySelectorAll("img")]) if (!wanted.has(Number(img.dataset.frame))) img.parentElement.remove();
  for (const frame of [...wanted.keys()].sort((a, b) => a - b)) {
    const version = wanted.get(frame);
    let img = grid.querySelector(`img[data-frame="${frame}"]`);
    if (!img) {
      const figure = document.createElement("figure");
      img = document.createElement("img");
      img.dataset.frame = frame;
      img.alt = `frame ${frame}`;
      const caption = document.createElement("figcaption");
      figure.append(img, caption);
      const after = [...grid.querySelectorAll("figure")].find((f) => Number(f.querySelector("img").dataset.frame) > frame);
      grid.insertBefore(figure, after || null);
    }
    const peak = detail.peak_memory_per_frame[frame];
    img.parentElement.querySelector("figcaption").textContent =
      (version === "done" ? `frame ${frame}` : `frame ${frame}: ${version.slice(6)} tile(s)`) +
      (peak ? ` · ${size(peak)}` : "");
    if (img.dataset.version !== version) {
      img.dataset.version = version;
      img.className = version === "done" ? "thumb" : "thumb partial";
      img.parentElement.classList.toggle("pending", version !== "done");
      img.src = `/api/jobs/${encodeURIComponent(job)}/frames/${frame}?v=${version}`;
    }
  }
  const video = $("video");
  video.hidden = !detail.video;
  const source = detail.video ? `/api/jobs/${encodeURIComponent(job)}/video?v=${detail.frames.length}` : "";
  if (video.dataset.source !== source) {
    video.dataset.source = source;
    if (source) video.src = source; else { video.removeAttribute("src"); video.load(); }
  }
  chart(detail.seconds_per_frame);
  $("failures").innerHTML = "";
  for (const f of detail.failures) {
    const li = document.createElement("li");
    li.textContent = `${f.pipeline} ${f.inputs}: ${f.error}`;
    $("failures").appendChild(li);
  }
  $("log").textContent = detail.log.join("\n");
}

$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  $("upload-status").textContent = `uploading ${file.name}…`;
  const response = await fetch(`/api/upload?name=${encodeURIComponent(file.name)}`, {method: "POST", body: file});
  const value = await response.json().catch(() => ({}));
  $("upload-status").textContent = response.ok ? `queued ${value.jobs.join(", ")}` : value.error;
});

// Template jobs: a form per template, of the fields its variants use (GET /api/templates).
let templatesKey = "";
async function loadTemplates() {
  const response = await fetch("/api/templates");
  if (!response.ok) return;
  const templates = await response.json();
  $("templates").hidden = templates.length === 0;
  for (const template of templates) {
    let form = $("template-forms").querySelector(`form[data-job="${CSS.escape(template.job)}"]`);
    if (!form) form = templateForm(template);
    form.querySelector(".variants").textContent = template.variants.length
      ? `Variants: ${template.variants.map((v) => v.job).join(", ")}` : "";
  }
}

function templateForm(template) {
  const form = document.createElement("form");
  form.className = "template";
  form.dataset.job = template.job;
  const title = document.createElement("h3");
  title.textContent = template.job;
  form.appendChild(title);
  const field = (label, input) => {
    const wrap = document.createElement("label");
    wrap.append(`${label} `, input);
    form.appendChild(wrap);
  };
  const name = document.createElement("input");
  Object.assign(name, {name: "name", required: true, pattern: "[A-Za-z0-9_\\-]+", placeholder: "e.g. zoe"});
  field("Name", name);
  for (const f of template.fields) {
    const input = document.createElement("input");
    input.name = f.field;
    if (f.type === "file") Object.assign(input, {type: "file", accept: "image/*"});
    else if (f.type === "boolean") input.placeholder = "true or false";
    else if (f.type !== "string") Object.assign(input, {inputMode: "decimal", placeholder: f.type});
    field(`${f.key} (${f.kind === "values" ? f.type : f.kind === "images" ? "image" : "text"})`, input);
  }
  const workers = document.createElement("input");
  Object.assign(workers, {name: "max_workers", type: "number", min: 1, step: 1, placeholder: "all"});
  field("Workers at most", workers);
  const submit = document.createElement("button");
  Object.assign(submit, {type: "submit", textContent: "Render"});
  const status = document.createElement("span");
  Object.assign(status, {className: "template-status", role: "status"});
  const variants = document.createElement("p");
  variants.className = "variants hint";
  form.append(submit, status, variants);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData();  // what was filled in: an empty field keeps the template's own
    for (const [key, value] of new FormData(form)) {
      if (value instanceof File ? value.size > 0 : value !== "") data.append(key, value);
    }
    status.textContent = "sending…";
    const response = await fetch(`/api/templates/${encodeURIComponent(template.job)}/variants`, {method: "POST", body: data});
    const answer = await response.json().catch(() => ({}));
    status.className = response.ok ? "template-status" : "template-status error";
    status.textContent = response.ok ? `queued ${answer.job}` : answer.error || response.statusText;
    if (response.ok) { select(answer.job); loadTemplates(); }  // the variant is recorded now
  });
  $("template-forms").appendChild(form);
  return form;
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("jobs", (event) => {
    $("live").textContent = "live";
    const jobs = JSON.parse(event.data);
    renderJobs(jobs);
    const key = jobs.map((j) => j.job).join(",");
    // A job shows as soon as intake puts it; the server keeps a template (and records a
    // variant) a moment after: look again once that moment has passed.
    if (key !== templatesKey) { templatesKey = key; loadTemplates(); setTimeout(loadTemplates, 1500); }
  });
  events.onerror = () => { $("live").textContent = "reconnecting…"; };
}
connect();
loadTemplates();

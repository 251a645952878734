// The map page: draw or upload an AOI, classify it for a year, toggle between years, compare two years.
// Offline: every raster on the page is an XYZ tile layer the service renders from its own data (the year's
// true colour from its feature stacks, the AOI's maps and change maps from their COGs) on the Web Mercator grid
// Leaflet draws in, so imagery, maps and the drawn AOI line up; the served footprint (GET /coverage) is drawn
// as an outline. The quality layer (observed / gap-filled / missing features / unclassified) is the answer's
// polygons. Service errors (4xx JSON "error") are shown in the status line.
"use strict";

// No fade-in: a tile is drawn as soon as it has loaded (and a screenshot after "load" shows every tile).
const map = L.map("map", { zoomControl: true, maxZoom: 19, fadeAnimation: false }).setView([40, 0], 10);
map.createPane("maps").style.zIndex = 350; // above the imagery (tile pane, 200), below vectors (400)
map.createPane("changes").style.zIndex = 360;
const IMAGERY_MIN_ZOOM = 12; // farther out a tile touches many stacks: slow to read the first time
const NATIVE_ZOOM = 17; // ~1.2 m tile pixels at 40°N: finer than the 10 m data, Leaflet scales beyond
const UNCHANGED = "#e1e1e1";
const state = {
  aoi: null, aoiLayer: null, coverage: {}, coverageLoads: {}, classes: [], drawing: false, corners: [],
  predictions: {}, // year -> {id, body?}: the AOI's maps (body when /predict answered it)
  imagery: null, classesLayer: null, qualityLayer: null, change: null, changeLayer: null,
};
const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

const classByName = (name) => state.classes.find((k) => k.name === name);

async function answerOf(r) {
  // The service's answer, or an Error with the message it sent (4xx/5xx JSON {"error": ...}).
  let body = null;
  try {
    body = await r.json();
  } catch (err) {
    if (r.ok) throw new Error(`unreadable answer: ${err.message}`);
  }
  const error = body && (Array.isArray(body) ? body[0].error : body.error);
  if (!r.ok || error) throw new Error(error || `HTTP ${r.status} ${r.statusText}`);
  return body;
}

async function reportTileError(src) {
  // An <img> cannot read an error body: ask again. 204 (nothing there) is not an error.
  try {
    const r = await fetch(src);
    if (r.status >= 400) {
      const body = await r.json().catch(() => ({}));
      setStatus(`Tile ${new URL(src).pathname}: ${body.error || `HTTP ${r.status}`}`, true);
    }
  } catch (err) {
    setStatus(`Tile ${src}: ${err.message}`, true);
  }
}

function tiles(url, marker, tag, options) {
  // A tile layer whose loaded state is on <body data-{marker}> (tests wait for it).
  const layer = L.tileLayer(url, { maxZoom: 19, maxNativeZoom: NATIVE_ZOOM, ...options });
  layer.on("loading", () => { delete document.body.dataset[marker]; });
  layer.on("load", () => { document.body.dataset[marker] = tag; });
  layer.on("tileerror", (e) => reportTileError(e.tile.src));
  return layer;
}

function bboxBounds([w, s, e, n]) {
  return L.latLngBounds([s, w], [n, e]);
}

function setAoi(geojson) {
  if (state.aoiLayer) map.removeLayer(state.aoiLayer);
  state.aoi = geojson;
  state.predictions = {};
  clearChange();
  state.aoiLayer = L.geoJSON(geojson, { style: { color: "#222", weight: 2, fill: false, dashArray: "4 4" } }).addTo(map);
  map.fitBounds(state.aoiLayer.getBounds(), { maxZoom: 16, animate: false });
  showClasses($("year").value);
  updateButtons();
  setStatus("AOI ready: press Classify (this year) or Compare (two years).");
}

function updateButtons() {
  $("predict").disabled = !state.aoi || !$("year").value;
  $("compare").disabled = !state.aoi || !$("from-year").value || $("from-year").value === $("to-year").value;
}

function loadCoverage(year) {
  // One request per year, however many selections wait for it (a year picked twice while its answer is on
  // the way would otherwise be drawn, and the view fitted, twice).
  if (!state.coverageLoads[year]) {
    const load = fetch(`/coverage?year=${encodeURIComponent(year)}`).then(answerOf);
    state.coverageLoads[year] = load;
    load.catch(() => delete state.coverageLoads[year]); // a failed load is asked again next time
  }
  return state.coverageLoads[year];
}

async function showCoverage(year) {
  try {
    state.coverage[year] = await loadCoverage(year);
  } catch (err) {
    setStatus(`Coverage of ${year}: ${err.message}`, true);
    return $("year").value === String(year); // still the year shown: its other layers go on
  }
  if ($("year").value !== String(year)) return false; // the user picked another year while this one loaded
  // Already drawn (the same year selected again): keep the view the user has moved to.
  if (state.coverageLayer && document.body.dataset.coverage === String(year)) return true;
  if (state.coverageLayer) map.removeLayer(state.coverageLayer);
  state.coverageLayer = L.geoJSON(state.coverage[year], {
    style: { color: "#2a6df4", weight: 1, fill: false }, interactive: false,
  }).addTo(map);
  document.body.dataset.coverage = String(year);
  if (!state.aoi) map.fitBounds(state.coverageLayer.getBounds(), { animate: false });
  return true;
}

function showImagery(year) {
  if (state.imagery) map.removeLayer(state.imagery);
  state.imagery = null;
  delete document.body.dataset.imagery;
  const coverage = state.coverage[year];
  if (!$("show-imagery").checked || !coverage) return;
  state.imagery = tiles(`/tiles/truecolour/${year}/{z}/{x}/{y}.png`, "imagery", String(year), {
    minZoom: IMAGERY_MIN_ZOOM, bounds: bboxBounds(coverage.bbox),
  }).addTo(map);
}

function showClasses(year) {
  for (const layer of [state.classesLayer, state.qualityLayer]) if (layer) map.removeLayer(layer);
  state.classesLayer = state.qualityLayer = null;
  delete document.body.dataset.classes;
  const p = state.predictions[year];
  $("result").hidden = !(p && p.body);
  if (!p) {
    if (state.aoi) setStatus(`No ${year} map of this AOI yet: press Classify.`);
    return;
  }
  const bounds = state.aoiLayer.getBounds().pad(0.05);
  state.classesLayer = tiles(`/tiles/predictions/${year}/${p.id}/{z}/{x}/{y}.png`, "classes", `${year}:${p.id}`, {
    pane: "maps", bounds, opacity: 0.85,
  });
  if (p.body) {
    state.qualityLayer = L.geoJSON(p.body.quality_geojson, {
      style: (f) => ({ color: f.properties.colour, weight: 0, fillOpacity: 0.75 }),
    });
    showResult(p.body);
  }
  $("show-quality").disabled = !state.qualityLayer;
  showLayer($("show-quality").checked && !!state.qualityLayer);
}

function showLayer(quality) {
  const [on, off] = quality ? [state.qualityLayer, state.classesLayer] : [state.classesLayer, state.qualityLayer];
  if (off && map.hasLayer(off)) map.removeLayer(off);
  if (on && !map.hasLayer(on)) on.addTo(map);
  document.body.dataset.layer = quality ? "quality" : "classes";
}

async function selectYear(year) {
  // A stale answer (a year selected before, whose coverage arrived late) must not move the map or its layers.
  if (!(await showCoverage(year))) return;
  showImagery(year);
  showClasses(year);
}

function fillYears(select, years, value) {
  select.innerHTML = "";
  for (const y of years) {
    const opt = document.createElement("option");
    opt.value = y.year;
    opt.textContent = `${y.year} (v${y.champion.version})`;
    select.appendChild(opt);
  }
  if (value !== undefined) select.value = String(value);
}

async function loadModels() {
  const body = await answerOf(await fetch("/models"));
  state.classes = body.classes;
  const years = [...body.years].sort((a, b) => a.year - b.year);
  const newest = years.length ? years[years.length - 1].year : undefined;
  fillYears($("year"), years, newest); // newest first
  fillYears($("from-year"), years, years.length > 1 ? years[years.length - 2].year : newest);
  fillYears($("to-year"), years, newest);
  const legend = document.querySelector("#legend ul");
  legend.innerHTML = "";
  for (const c of body.classes) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="swatch" style="background:${c.colour}"></span>${c.code} ${c.name}`;
    legend.appendChild(li);
  }
  updateButtons();
  if (years.length === 0) setStatus("No year has an approved model yet.", true);
  else await selectYear($("year").value);
}

$("year").addEventListener("change", (e) => selectYear(e.target.value));
$("from-year").addEventListener("change", updateButtons);
$("to-year").addEventListener("change", updateButtons);
$("show-imagery").addEventListener("change", () => showImagery($("year").value));
$("show-quality").addEventListener("change", (e) => showLayer(e.target.checked));
$("show-change").addEventListener("change", (e) => {
  if (!state.changeLayer) return;
  if (e.target.checked) state.changeLayer.addTo(map);
  else map.removeLayer(state.changeLayer);
});

$("draw").addEventListener("click", () => {
  state.drawing = !state.drawing;
  state.corners = [];
  $("draw").classList.toggle("active", state.drawing);
  setStatus(state.drawing ? "Click the first corner." : "");
});

map.on("click", (e) => {
  if (!state.drawing) return;
  state.corners.push(e.latlng);
  if (state.corners.length === 1) {
    setStatus("Click the opposite corner.");
    return;
  }
  const [a, b] = state.corners;
  const w = Math.min(a.lng, b.lng), e2 = Math.max(a.lng, b.lng), s = Math.min(a.lat, b.lat), n = Math.max(a.lat, b.lat);
  state.drawing = false;
  $("draw").classList.remove("active");
  setAoi({ type: "Polygon", coordinates: [[[w, s], [e2, s], [e2, n], [w, n], [w, s]]] });
});

$("upload").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    setAoi(JSON.parse(await file.text()));
  } catch (err) {
    setStatus(`Not a GeoJSON file: ${err.message}`, true);
  }
});

async function post(path, body) {
  return answerOf(await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  }));
}

$("predict").addEventListener("click", async () => {
  if (!state.aoi) return;
  const year = $("year").value;
  setStatus(`Classifying ${year}…`);
  $("predict").disabled = true;
  try {
    const body = await post("/predict", { aoi: state.aoi, year: Number(year), format: "geojson" });
    state.predictions[year] = { id: body.prediction_id, body };
    if ($("year").value === year) showClasses(year);
    setStatus(`${year} classified in ${body.elapsed_ms} ms.`);
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    updateButtons();
  }
});

function showResult(body) {
  $("confidence").textContent = `${(100 * body.avg_confidence).toFixed(1)} %`;
  const q = body.quality_fractions || {};
  const pct = (v) => `${(100 * (v || 0)).toFixed(1)} %`;
  $("classified").textContent = `${pct(body.classified_fraction)} (observed ${pct(q.observed)}, gap-filled ${pct(q.gap_filled)}, missing features ${pct(q.missing_features)})`;
  $("model").textContent = `${body.model.name} v${body.model.version}`;
  const tbody = document.querySelector("#areas tbody");
  tbody.innerHTML = "";
  for (const [name, ha] of Object.entries(body.class_areas_ha)) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${name}</td><td>${ha.toFixed(2)}</td>`;
    tbody.appendChild(tr);
  }
  $("download").href = body.download_path;
  $("download-quality").href = body.quality_download_path;
  $("prediction-id").textContent = body.prediction_id;
  $("result").hidden = false;
}

function clearChange() {
  if (state.changeLayer) map.removeLayer(state.changeLayer);
  state.change = state.changeLayer = null;
  delete document.body.dataset.change;
  $("change-result").hidden = true;
}

$("compare").addEventListener("click", async () => {
  if (!state.aoi) return;
  const from = $("from-year").value, to = $("to-year").value;
  setStatus(`Comparing ${from} with ${to}…`);
  $("compare").disabled = true;
  try {
    const body = await post("/change", { aoi: state.aoi, from_year: Number(from), to_year: Number(to) });
    clearChange();
    state.change = body;
    // both years' maps of the AOI came with it: the year toggle shows them
    for (const [role, year] of [["from", from], ["to", to]]) {
      if (!state.predictions[year]) state.predictions[year] = { id: body.predictions[role] };
    }
    showClasses($("year").value);
    showChange(body);
    setStatus(`${from} → ${to} compared in ${body.elapsed_ms} ms.`);
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    updateButtons();
  }
});

function showChange(body) {
  const pair = `${body.from_year}-${body.to_year}`;
  state.changeLayer = tiles(`/tiles/changes/${pair}/${body.change_id}/{z}/{x}/{y}.png`, "change", `${pair}:${body.change_id}`, {
    pane: "changes", bounds: state.aoiLayer.getBounds().pad(0.05),
  });
  if ($("show-change").checked) state.changeLayer.addTo(map);
  $("changed").textContent = `${(100 * body.changed_fraction).toFixed(1)} % (${body.changed_ha.toFixed(2)} ha)`;
  $("compared").textContent = `${body.compared_ha.toFixed(2)} ha compared`;
  $("model-share").textContent = body.model_change_share === null ? ""
    : `${(100 * body.model_change_share).toFixed(0)} % of it disappears when the ${body.from_year} model maps both years (model change, not land change)`;
  const rows = [];
  let unchanged = 0;
  for (const [from, row] of Object.entries(body.transition_ha)) {
    for (const [to, ha] of Object.entries(row)) {
      if (from === to) unchanged += ha;
      else rows.push([from, to, ha]);
    }
  }
  rows.sort((a, b) => b[2] - a[2]);
  const tbody = document.querySelector("#transitions tbody");
  tbody.innerHTML = "";
  const add = (colour, text, ha) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td><span class="swatch" style="background:${colour}"></span> ${text}</td><td>${ha.toFixed(2)}</td>`;
    tbody.appendChild(tr);
  };
  for (const [from, to, ha] of rows) add((classByName(to) || { colour: "#000" }).colour, `${from} → ${to}`, ha);
  add(UNCHANGED, "unchanged", unchanged);
  $("download-change").href = body.download_path;
  $("change-result").hidden = false;
}

loadModels().catch((err) => setStatus(`Cannot reach the service: ${err.message}`, true));

"use strict";
// The operator console. Every piece of text that came from a user or a sensor is put on the page
// with textContent or as an attribute value, never as HTML: a posted "<img onerror=…>" is text.
(() => {
  const I18N = window.SITROOM_I18N;
  // Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
  const OI = {
    orange: "#E69F00", sky: "#56B4E9", green: "#009E73", yellow: "#F0E442",
    blue: "#0072B2", vermillion: "#D55E00", purple: "#CC79A7", black: "#000000", grey: "#999999",
  };
  const STATUS_COLOUR = {
    planned: OI.blue, active: OI.vermillion, suspended: OI.orange, completed: OI.green, cancelled: OI.grey,
  };
  // Organisations get colours in the order the registry lists them; the areas' municipalities black.
  const ORG_PALETTE = [OI.sky, OI.orange, OI.green, OI.purple, OI.yellow, OI.blue, OI.vermillion];
  const orgColour = (org) => {
    if ((state.areas.municipalities || []).includes(org)) return OI.black;
    const others = state.orgs.filter((o) => !(state.areas.municipalities || []).includes(o));
    const i = others.indexOf(org);
    return i < 0 ? OI.grey : ORG_PALETTE[i % ORG_PALETTE.length];
  };
  const SEVERITY_COLOUR = { critical: OI.vermillion, warning: OI.orange, info: OI.blue };
  const HEADERS = { "X-Sitroom-Console": "1" };

  const state = {
    lang: localStorage.getItem("sitroom.lang") || "it",
    me: null, orgs: [], alerts: new Map(), worksites: { type: "FeatureCollection", features: [] },
    sensors: { parking: [], traffic: [], fleet: [] }, thread: null, threadOwner: null, source: null,
    areas: { type: "FeatureCollection", features: [], municipalities: [], view: { lat: 43.876, lon: 11.098, zoom: 13 } },
  };
  const $ = (id) => document.getElementById(id);
  const t = (key) => (I18N[state.lang] && I18N[state.lang][key]) || key;
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      node.setAttribute(k, v === true ? "" : String(v));
    }
    if (text !== undefined) node.textContent = String(text);
    return node;
  };
  // Leaflet's bindTooltip and bindPopup put a string in as HTML (innerHTML): hand them an element
  // that holds the text instead, so a worksite titled "<img onerror=…>" stays text on the map.
  const tip = (text) => el("span", {}, text);

  // --- language and large type ---------------------------------------------------------------
  function applyLang() {
    document.documentElement.lang = state.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
    $("lang").textContent = state.lang === "it" ? "EN" : "IT";
    if (state.source) setConn(state.source.readyState === 1);
    renderAll();
  }
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "it" ? "en" : "it";
    localStorage.setItem("sitroom.lang", state.lang);
    applyLang();
  });
  function setLarge(on) {
    document.body.classList.toggle("large", on);
    $("large").setAttribute("aria-pressed", String(on));
    localStorage.setItem("sitroom.large", on ? "1" : "0");
    if (map) setTimeout(() => map.invalidateSize(), 50);
  }
  $("large").addEventListener("click", () => setLarge(!document.body.classList.contains("large")));

  // --- HTTP ------------------------------------------------------------------------------------
  async function api(method, path, body, extra = {}) {
    const init = { method, headers: { ...HEADERS, ...(extra.headers || {}) }, credentials: "same-origin" };
    if (body instanceof Blob) init.body = body;
    else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const resp = await fetch(path, init);
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const err = new Error(data.detail || resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  // --- log-in ----------------------------------------------------------------------------------
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      await api("POST", "/console/api/login", { username: $("username").value.trim(), password: $("password").value });
      await start();
    } catch (err) {
      $("login-error").textContent = t("badlogin");
      $("password").focus();
    }
  });
  $("logout").addEventListener("click", async () => {
    await api("POST", "/console/api/logout").catch(() => {});
    location.reload();
  });

  // --- the map ---------------------------------------------------------------------------------
  let map = null;
  const layers = {};
  function initMap() {
    if (map || !window.L) return;
    // No tile server: the city is drawn from our own GeoJSON (static/prato.geojson). The view is
    // the operator's areas (the deployment's areas file), as the server computed it.
    const view = state.areas.view;
    map = L.map("map", { zoomControl: true, attributionControl: false, keyboard: true, preferCanvas: false })
      .setView([view.lat, view.lon], view.zoom);
    // The city drawing has its own pane under the live layers, whenever its file arrives.
    map.createPane("city").style.zIndex = "350";
    layers.base = L.layerGroup().addTo(map);
    L.geoJSON(state.areas, {
      interactive: false, pane: "city",
      style: () => ({ color: "#555", weight: 2, fill: false, dashArray: "6 4" }),
    }).addTo(layers.base);
    layers.worksites = L.layerGroup().addTo(map);
    layers.parking = L.layerGroup().addTo(map);
    layers.traffic = L.layerGroup().addTo(map);
    layers.fleet = L.layerGroup().addTo(map);
    fetch("/console/static/prato.geojson").then((r) => r.json()).then((gj) => {
      L.geoJSON(gj, {
        interactive: false,
        pane: "city",
        filter: (f) => f.geometry.type !== "Point", // points are labels, drawn below
        style: (f) => {
          const k = f.properties.kind;
          if (k === "boundary") return { color: "#555", weight: 2, fill: true, fillColor: "#f4f1ea", fillOpacity: 1, dashArray: "6 4" };
          if (k === "walls") return { color: "#8a7a5a", weight: 3, fill: true, fillColor: "#ece3cf", fillOpacity: 1 };
          if (k === "river") return { color: OI.sky, weight: 5, opacity: 0.6 };
          if (k === "railway") return { color: "#666", weight: 2, dashArray: "2 4" };
          if (k === "ring") return { color: "#bbb", weight: 7 };
          return { color: "#c8c8c8", weight: 4 };
        },
      }).addTo(layers.base);
      for (const f of gj.features) {
        if (f.properties.label && f.geometry.type === "Point") {
          L.marker([f.geometry.coordinates[1], f.geometry.coordinates[0]], {
            icon: L.divIcon({ className: "place-label", html: "", iconSize: null }), interactive: false, keyboard: false,
          }).addTo(layers.base).getElement().textContent = f.properties.label;
        }
      }
    }).catch(() => {});
  }

  function drawWorksites() {
    if (!map) return;
    layers.worksites.clearLayers();
    L.geoJSON(state.worksites, {
      style: (f) => ({ color: STATUS_COLOUR[f.properties.status] || OI.grey, weight: 8, opacity: 0.9, className: "ws-feature",
        dashArray: f.properties.status === "planned" ? "10 6" : null }),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 9, className: "ws-feature" }),
      onEachFeature: (f, layer) => {
        layer.on("click", () => openWorksite(f.properties.id));
        layer.bindTooltip(tip(`${f.properties.title} — ${f.properties.owner} (${t(f.properties.status)})`));
      },
    }).addTo(layers.worksites);
  }

  function drawSensors() {
    if (!map) return;
    layers.parking.clearLayers();
    layers.traffic.clearLayers();
    layers.fleet.clearLayers();
    for (const p of state.sensors.parking) {
      const pct = p.occupancy_pct ?? 0;
      // Fill level is shown by the colour *and* by the number in the tooltip (not colour alone).
      const colour = pct >= 90 ? OI.vermillion : pct >= 70 ? OI.orange : OI.green;
      L.circleMarker([p.lat, p.lon], { radius: 10, color: "#000", weight: 1, fillColor: colour, fillOpacity: 0.9, className: "parking-marker" })
        .bindTooltip(tip(`P ${p.name}: ${Math.round(pct)}% (${p.occupied}/${p.capacity})`)).addTo(layers.parking);
    }
    for (const c of state.sensors.traffic) {
      const r = c.ratio ?? 1;
      const colour = r >= 1.3 ? OI.vermillion : r <= 0.7 ? OI.blue : OI.grey;
      L.circleMarker([c.lat, c.lon], { radius: 6, color: colour, weight: 3, fillOpacity: 0, className: "traffic-marker" })
        .bindTooltip(tip(`${c.name}: ${c.vehicles} / ${c.baseline} (${r.toFixed ? r.toFixed(2) : r}×)`)).addTo(layers.traffic);
    }
    for (const v of state.sensors.fleet) {
      L.circleMarker([v.lat, v.lon], { radius: 5, color: "#fff", weight: 1, fillColor: orgColour(v.org), fillOpacity: 1, className: "vehicle-marker" })
        .bindTooltip(tip(`${v.id} (${v.org}) ${Math.round(v.speed_kmh ?? 0)} km/h`)).addTo(layers.fleet);
    }
    renderLegend();
  }

  function renderLegend() {
    const legend = $("legend");
    legend.replaceChildren();
    const counts = el("p", { id: "counts" });
    const n = state.worksites.features.length;
    const add = (id, value, label) => {
      counts.append(el("span", { id, "data-count": value }, `${value} ${t(label)}`), " · ");
    };
    add("count-worksites", n, "legend_ws");
    add("count-vehicles", state.sensors.fleet.length, "vehicles");
    add("count-parking", state.sensors.parking.length, "parking");
    add("count-traffic", state.sensors.traffic.length, "counters");
    counts.lastChild.remove();
    legend.append(counts);
    const keys = el("ul", { class: "keys" });
    for (const [status, colour] of Object.entries(STATUS_COLOUR)) {
      const li = el("li");
      li.append(el("span", { class: `swatch ${status}`, "data-colour": colour }), t(status));
      keys.append(li);
    }
    legend.append(keys);
  }

  // --- lists -----------------------------------------------------------------------------------
  function renderAlerts() {
    const feed = $("feed");
    feed.replaceChildren();
    const open = [...state.alerts.values()].filter((a) => a.state !== "resolved").sort((a, b) => b.id - a.id);
    if (!open.length) feed.append(el("li", { class: "empty" }, t("noalerts")));
    for (const a of open) {
      const li = el("li");
      const btn = el("button", { type: "button", class: `alert-item sev-${a.severity}`, "data-alert": a.id, "data-state": a.state,
        "aria-current": state.thread === `alert:${a.id}` ? "true" : null });
      btn.append(el("span", { class: "sev" }, t(a.severity)), el("span", { class: "msg" }, a.message),
        el("span", { class: "who" }, `${a.org} · ${a.entity} · ${t(a.state)}`));
      btn.addEventListener("click", () => openAlert(a.id));
      li.append(btn);
      feed.append(li);
    }
  }

  function renderWorksiteList() {
    const list = $("worksite-list");
    list.replaceChildren();
    for (const f of state.worksites.features) {
      const p = f.properties;
      const btn = el("button", { type: "button", class: `ws-item st-${p.status}`, "data-worksite": p.id });
      btn.append(el("span", { class: "sev" }, t(p.status)), el("span", { class: "msg" }, p.title),
        el("span", { class: "who" }, `${p.owner} · ${p.street}`));
      btn.addEventListener("click", () => openWorksite(p.id));
      const li = el("li");
      li.append(btn);
      list.append(li);
    }
  }

  function renderAll() {
    renderAlerts();
    renderWorksiteList();
    renderLegend();
    if (state.thread) renderDetailHead();
  }

  const TABS = [["tab-alerts", "feed"], ["tab-worksites", "worksite-list"], ["tab-pr", "pr-panel"]];
  for (const [tab, list] of TABS) {
    $(tab).addEventListener("click", () => {
      for (const [other, otherList] of TABS) {
        $(other).setAttribute("aria-selected", String(other === tab));
        $(otherList).hidden = other !== tab;
      }
      if (tab === "tab-pr") loadParkAndRide();
      $(list).querySelector("button")?.focus();
    });
  }

  // --- park and ride: free spaces and the next buses toward the fullest car park -------------
  // From the public route /intermodality/park-and-ride (timetable + real-time delay); text only.
  const hhmm = (iso) => new Date(iso).toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
  async function loadParkAndRide() {
    let data;
    try {
      const r = await fetch("/intermodality/park-and-ride", { headers: { Accept: "application/json" } });
      if (!r.ok) { $("pr-toward").textContent = (await r.json()).detail || r.statusText; $("pr-list").replaceChildren(); return; }
      data = await r.json();
    } catch (e) { $("pr-toward").textContent = String(e.message || e); return; }
    const to = data.toward;
    $("pr-toward").textContent = `${t("toward")}: ${to.name}` + (to.occupancy_pct == null ? "" : ` (${Math.round(to.occupancy_pct)}%, ${to.free} ${t("free")})`);
    const list = $("pr-list");
    list.replaceChildren();
    for (const p of data.park_and_ride) {
      const li = el("li", { class: "pr-item", "data-sensor": p.sensor });
      li.append(el("strong", {}, p.name), ` · ${p.free == null ? "?" : p.free} ${t("free")}`);
      if (p.stops.length) li.append(el("p", { class: "who" }, `${t("busstops_near")}: ${p.stops.map((s) => s.name).join(", ")}`));
      const deps = el("ul", { class: "departures" });
      for (const d of p.departures) {
        const late = d.delay_s == null ? "" : d.delay_s === 0 ? ` (${t("ontime")})` : ` (${d.delay_s > 0 ? "+" : ""}${Math.round(d.delay_s / 60)} min)`;
        deps.append(el("li", { "data-trip": d.trip_id }, `${d.route} ${hhmm(d.expected)}${late} → ${d.alight_stop} ${hhmm(d.arrival)}`));
      }
      if (!p.departures.length) deps.append(el("li", { class: "empty" }, t("nodepartures")));
      li.append(deps);
      list.append(li);
    }
  }
  setInterval(() => { if (!$("pr-panel").hidden) loadParkAndRide(); }, 30000);
  $("open-city").addEventListener("click", () => openThread("city"));

  // --- detail pane and threads -----------------------------------------------------------------
  function openAlert(id) { openThread(`alert:${id}`); }
  function openWorksite(id) { openThread(`worksite:${id}`); }

  async function openThread(thread) {
    state.thread = thread;
    $("detail").hidden = false;
    $("detail").dataset.thread = thread;
    $("posts").replaceChildren();
    renderDetailHead();
    renderAlerts();
    const data = await api("GET", `/console/api/threads/${encodeURIComponent(thread)}/posts`);
    if (state.thread !== thread) return;
    state.threadOwner = data.owner;
    $("composer").hidden = !data.may_post;
    $("post-error").textContent = data.may_post ? "" : t("readonly");
    if (!data.may_post) { $("composer").hidden = false; $("post-text").disabled = true; $("post-send").disabled = true; $("post-files").disabled = true; }
    else { $("post-text").disabled = false; $("post-send").disabled = false; $("post-files").disabled = false; }
    for (const p of data.posts) appendPost(p);
    renderDetailHead();
    $("detail-title").focus();
  }

  function canActFor(org) {
    const me = state.me;
    return me && (me.role === "municipality_operator" || (me.role !== "read_only" && me.org === org));
  }

  function renderDetailHead() {
    const thread = state.thread;
    const title = $("detail-title"), meta = $("detail-meta"), actions = $("actions");
    title.setAttribute("tabindex", "-1");
    actions.replaceChildren();
    if (thread === "city") {
      title.textContent = t("citytitle");
      meta.textContent = "";
      return;
    }
    const [kind, key] = [thread.slice(0, thread.indexOf(":")), thread.slice(thread.indexOf(":") + 1)];
    if (kind === "alert") {
      const a = state.alerts.get(Number(key));
      if (!a) { title.textContent = thread; return; }
      title.textContent = a.message;
      meta.textContent = `${t(a.severity)} · ${a.org} · ${a.entity} · ${t(a.state)} · ${new Date(a.fired_at).toLocaleString(state.lang)}`;
      meta.dataset.state = a.state;
      if (canActFor(a.org) && a.state !== "resolved") {
        if (a.state !== "acknowledged") actions.append(actionButton("ack", t("ack"), () => api("POST", `/console/api/alerts/${a.id}/ack`, { note: "" })));
        actions.append(actionButton("resolve", t("resolve"), () => api("POST", `/console/api/alerts/${a.id}/resolve`, { note: "" })));
        const sel = el("select", { id: "assign-org", "aria-label": t("assign") });
        sel.append(el("option", { value: "" }, `${t("assign")}…`));
        for (const o of state.orgs) sel.append(el("option", { value: o }, o));
        sel.addEventListener("change", () => sel.value && api("POST", `/console/api/alerts/${a.id}/assign`, { org: sel.value, note: "" }).catch(showError));
        actions.append(sel);
      }
    } else {
      const f = state.worksites.features.find((w) => w.properties.id === key);
      if (!f) { title.textContent = thread; return; }
      const p = f.properties;
      title.textContent = p.title;
      meta.textContent = `${t("owner")}: ${p.owner} · ${p.street} · ${t(p.status)} · ${p.start} → ${p.end}`;
      // Bus routes passing the worksite and stops inside it, from the imported GTFS (text only).
      if (p.transit_routes) meta.textContent += ` · ${t("busroutes")}: ${p.transit_routes}`;
      if (p.transit_stops) meta.textContent += ` · ${t("busstops")}: ${p.transit_stops}`;
      const label = el("label", { for: "ws-status" }, `${t("status")} `);
      const sel = el("select", { id: "ws-status", disabled: !canActFor(p.owner), title: canActFor(p.owner) ? null : t("notallowed") });
      for (const s of Object.keys(STATUS_COLOUR)) sel.append(el("option", { value: s, selected: s === p.status }, t(s)));
      sel.addEventListener("change", () => api("PATCH", `/console/api/worksites/${encodeURIComponent(p.id)}`, { status: sel.value }).catch(showError));
      actions.append(label, sel);
      if (map && f.geometry) {
        try { map.fitBounds(L.geoJSON(f).getBounds(), { maxZoom: 16 }); } catch (e) { /* a point worksite */ }
      }
    }
  }

  function actionButton(id, label, fn) {
    const b = el("button", { type: "button", id: `action-${id}` }, label);
    b.addEventListener("click", () => fn().catch(showError));
    return b;
  }
  function showError(err) { $("post-error").textContent = err.message; }

  function appendPost(p) {
    if (p.thread !== state.thread || document.querySelector(`#posts [data-post="${p.id}"]`)) return;
    const li = el("li", { class: `post kind-${p.kind}`, "data-post": p.id });
    const head = el("p", { class: "head" });
    head.append(el("strong", {}, p.author), ` (${p.org}) `, el("time", { datetime: p.created_at }, new Date(p.created_at).toLocaleTimeString(state.lang)));
    li.append(head);
    if (p.kind !== "post") li.append(el("p", { class: "event" }, `${t(`kind_${p.kind}`)}${p.kind === "assign" ? " " + p.mentions.join(", ") : ""}`));
    if (p.text) li.append(el("p", { class: "text" }, p.text));
    for (const f of p.files) {
      const a = el("a", { href: f.url, target: "_blank", rel: "noopener", class: "attachment" });
      if (f.thumb_url) a.append(el("img", { src: f.thumb_url, alt: f.name, class: "thumb", loading: "lazy" }));
      else a.textContent = `📄 ${f.name}`;
      li.append(a);
    }
    const posts = $("posts");
    posts.append(li);
    posts.scrollTop = posts.scrollHeight; // not scrollIntoView: that would scroll the whole wall

  }

  $("composer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("post-error").textContent = "";
    const text = $("post-text").value;
    const files = [...$("post-files").files];
    $("post-send").disabled = true;
    try {
      const ids = [];
      for (const file of files) {
        const up = await api("POST", `/console/api/uploads?name=${encodeURIComponent(file.name)}`, file,
          { headers: { "Content-Type": "application/octet-stream" } });
        ids.push(up.id);
      }
      const post = await api("POST", `/console/api/threads/${encodeURIComponent(state.thread)}/posts`, { text, files: ids });
      appendPost(post);
      $("post-text").value = "";
      $("post-files").value = "";
    } catch (err) {
      showError(err);
    } finally {
      $("post-send").disabled = false;
    }
  });
  $("post-text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("composer").requestSubmit();
  });

  // --- live updates ----------------------------------------------------------------------------
  function setConn(live) {
    const c = $("conn");
    c.dataset.state = live ? "live" : "off";
    c.textContent = t(live ? "online" : "offline");
  }
  function toast(text) {
    const node = $("toast");
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { node.hidden = true; }, 8000);
  }

  function connect() {
    const source = new EventSource("/console/api/events");
    state.source = source;
    source.addEventListener("hello", () => setConn(true));
    source.onerror = () => setConn(false);
    source.addEventListener("alert", (ev) => {
      const a = JSON.parse(ev.data);
      const isNew = !state.alerts.has(a.id);
      state.alerts.set(a.id, a);
      renderAlerts();
      if (state.thread === `alert:${a.id}`) renderDetailHead();
      if (isNew && a.state !== "resolved") {
        $("announce").textContent = `${t("newalert")}: ${a.message}`;
        document.querySelector(`[data-alert="${a.id}"]`)?.classList.add("fresh");
      }
    });
    source.addEventListener("worksites", (ev) => {
      state.worksites = JSON.parse(ev.data);
      drawWorksites();
      renderWorksiteList();
      renderLegend();
      if (state.thread && state.thread.startsWith("worksite:")) renderDetailHead();
    });
    source.addEventListener("sensors", (ev) => {
      state.sensors = JSON.parse(ev.data);
      drawSensors();
    });
    source.addEventListener("post", (ev) => appendPost(JSON.parse(ev.data)));
    source.addEventListener("mention", (ev) => {
      const m = JSON.parse(ev.data);
      if (state.me && m.orgs.includes(state.me.org)) toast(`${t("mentioned")} ${m.thread}`);
    });
  }

  // --- start -----------------------------------------------------------------------------------
  async function start() {
    const snap = await api("GET", "/console/api/snapshot");
    state.me = snap.me;
    state.orgs = snap.orgs;
    state.worksites = snap.worksites;
    state.sensors = snap.sensors;
    state.alerts = new Map(snap.alerts.map((a) => [a.id, a]));
    if (snap.areas) state.areas = snap.areas;
    $("login-view").hidden = true;
    $("board").hidden = false;
    $("logout").hidden = false;
    $("whoami").textContent = `${snap.me.display_name} · ${snap.me.org}`;
    $("whoami").dataset.role = snap.me.role;
    initMap();
    drawWorksites();
    drawSensors();
    renderAll();
    connect();
    document.body.dataset.ready = "1";
  }

  setLarge(localStorage.getItem("sitroom.large") === "1");
  applyLang();
  api("GET", "/console/api/me").then(start).catch(() => {
    $("login-view").hidden = false;
    $("username").focus();
  });
})();

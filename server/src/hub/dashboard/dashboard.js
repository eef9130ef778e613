// The state hub's dashboard: every indicator statewide over time and by
// community, from the hub's own public JSON. Suppressed figures are drawn
// as such (hatched, labelled), never guessed at. No framework, no build:
// the hub serves this file as it is.

const SVG = "http://www.w3.org/2000/svg";
const MONTHS = 12;
const AGE_LABELS = { "0-5": "0–5", "6-11": "6–11", "12-17": "12–17", "18-21": "18–21", unknown: "Unknown" };

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
};
const svg = (tag, attrs = {}) => {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
};

async function getJson(path) {
  const reply = await fetch(path, { headers: { accept: "application/json" } });
  if (!reply.ok) throw new Error(`${path}: ${reply.status}`);
  return reply.json();
}

const number = new Intl.NumberFormat("en-US");
const dollars = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });

function monthLabel(period, long = false) {
  const [y, m] = period.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, 1)).toLocaleDateString("en-US", {
    month: long ? "long" : "short", year: long ? "numeric" : "2-digit", timeZone: "UTC",
  });
}

/** "days30" → 30; "days720_plus" → 720. */
function bandStart(category) {
  const match = /^days(\d+)/.exec(category ?? "");
  return match ? Number(match[1]) : null;
}
function categoryLabel(category) {
  const start = bandStart(category);
  if (start !== null) return category.endsWith("_plus") ? `${start}+ days` : `${start}–${start + 29} days`;
  const text = category.replaceAll("_", " ");
  return text[0].toUpperCase() + text.slice(1);
}

/** The number a figure is charted by, or null when it is withheld. */
function plotted(measure, figure) {
  if (!figure) return null;
  switch (measure) {
    case "rate": return figure.rate == null ? null : figure.rate * 100;
    case "median": { const s = bandStart(figure.median); return s === null ? null : s + 15; }
    case "amount": return figure.per_youth == null ? null : figure.per_youth / 100;
    default: return figure.value ?? null;
  }
}

function headline(measure, figure) {
  if (!figure || figure.suppressed && plotted(measure, figure) === null) return "suppressed";
  switch (measure) {
    case "rate": return figure.rate == null ? "—" : `${(figure.rate * 100).toFixed(1)}%`;
    case "median": return figure.median ? categoryLabel(figure.median) : "—";
    case "amount": return figure.value == null ? "suppressed" : dollars.format(figure.value / 100);
    default: return figure.value == null ? "suppressed" : number.format(figure.value);
  }
}

function detail(def, figure) {
  if (!figure) return "";
  switch (def.measure) {
    case "rate":
      return figure.value != null && figure.base != null
        ? `${number.format(figure.value)} of ${number.format(figure.base)} ${def.unit === "needs" ? "needs" : "youth"}`
        : figure.base != null ? `of ${number.format(figure.base)}` : "";
    case "median": return figure.value != null ? `median of ${number.format(figure.value)} youth discharged` : "";
    case "amount":
      return figure.per_youth != null ? `${dollars.format(figure.per_youth / 100)} per youth, ${number.format(figure.base)} youth` : "";
    default: return "";
  }
}

function flags(figure) {
  const out = [];
  if (figure?.suppressed) out.push(el("span", { class: "tag suppressed" }, "suppressed"));
  if (figure?.unstable) out.push(el("span", { class: "tag unstable" }, "unstable"));
  return out;
}

/** A line over the months; withheld months are gaps with a hatched marker. */
function trend(def, series) {
  const width = 320, height = 110, pad = { l: 34, r: 8, t: 10, b: 22 };
  const values = series.map((s) => plotted(def.measure, s.figure));
  const known = values.filter((v) => v !== null);
  const top = def.measure === "rate" ? 100 : Math.max(1, ...known) * 1.1;
  const x = (i) => pad.l + (series.length === 1 ? 0 : (i * (width - pad.l - pad.r)) / (series.length - 1));
  const y = (v) => pad.t + (1 - v / top) * (height - pad.t - pad.b);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "trend", role: "img" });
  chart.setAttribute("aria-label", `${def.title}, statewide, last ${series.length} months`);
  for (const frac of [0, 0.5, 1]) {
    const v = top * frac;
    chart.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: "grid" }));
    const label = svg("text", { x: pad.l - 4, y: y(v) + 3, class: "axis", "text-anchor": "end" });
    label.textContent = def.measure === "rate" ? `${Math.round(v)}%` : v >= 1000 ? `${Math.round(v / 1000)}k` : Math.round(v);
    chart.append(label);
  }
  let path = "";
  values.forEach((v, i) => {
    if (v === null) return;
    path += `${path && values[i - 1] !== null ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
  });
  chart.append(svg("path", { d: path, class: "line" }));
  values.forEach((v, i) => {
    const title = svg("title");
    const figure = series[i].figure;
    title.textContent = `${monthLabel(series[i].period, true)}: ${headline(def.measure, figure)}`;
    let mark;
    if (v === null) {
      mark = svg("rect", { x: x(i) - 4, y: height - pad.b - 12, width: 8, height: 12, class: "withheld" });
    } else {
      mark = svg("circle", { cx: x(i), cy: y(v), r: 3, class: figure?.unstable ? "point unstable" : "point" });
    }
    mark.append(title);
    chart.append(mark);
    if (i === 0 || i === series.length - 1 || i === Math.floor(series.length / 2)) {
      const anchor = i === 0 ? "start" : i === series.length - 1 ? "end" : "middle";
      const label = svg("text", { x: x(i), y: height - 6, class: "axis", "text-anchor": anchor });
      label.textContent = monthLabel(series[i].period);
      chart.append(label);
    }
  });
  return chart;
}

/** Horizontal bars, one per row; a withheld row is a hatched bar saying so. */
function bars(def, rows, caption) {
  const values = rows.map((r) => plotted(def.measure, r.figure));
  const top = def.measure === "rate" ? 100 : Math.max(1, ...values.filter((v) => v !== null));
  const list = el("div", { class: "bars", role: "list", "aria-label": caption });
  list.append(el("h4", {}, caption));
  rows.forEach((row, i) => {
    const v = values[i];
    const item = el("div", { class: "bar-row", role: "listitem" });
    item.append(el("span", { class: "bar-label" }, row.label));
    const track = el("span", { class: "bar-track" });
    const withheld = v === null && row.figure?.suppressed;
    const fill = el("span", { class: withheld ? "bar withheld" : "bar" });
    fill.style.width = withheld ? "100%" : `${Math.max(0, Math.min(100, ((v ?? 0) / top) * 100))}%`;
    track.append(fill);
    item.append(track);
    item.append(el("span", { class: withheld ? "bar-value suppressed-text" : "bar-value" },
      withheld ? "suppressed" : headline(def.measure, row.figure)));
    list.append(item);
  });
  return list;
}

function card(def, current, series) {
  const statewide = current?.statewide;
  const figure = statewide?.total;
  const card = el("article", { class: "card", id: `indicator-${def.indicator}`, "data-indicator": def.indicator });
  card.append(el("h3", {}, def.title));
  card.append(el("p", { class: "definition" }, def.definition));
  const big = el("div", { class: "headline" });
  big.append(el("span", { class: figure?.suppressed && plotted(def.measure, figure) === null ? "value suppressed-text" : "value" },
    headline(def.measure, figure)));
  big.append(el("span", { class: "detail" }, detail(def, figure)));
  for (const tag of flags(figure)) big.append(tag);
  card.append(big);
  if (series.length > 1) card.append(trend(def, series));
  const charts = el("div", { class: "charts" });
  if (current?.communities?.length) {
    charts.append(bars(def, current.communities.map((c) => ({ label: c.node, figure: c.total })), "By community"));
  }
  if (statewide?.by_category?.length) {
    charts.append(bars(def, statewide.by_category.map((c) => ({ label: categoryLabel(c.category), figure: c })),
      def.measure === "median" ? "Youth by days in service" : "By category"));
  }
  if (statewide?.by_age_band?.length) {
    charts.append(bars(def, statewide.by_age_band.map((a) => ({ label: AGE_LABELS[a.age_band] ?? a.age_band, figure: a })), "By age"));
  }
  card.append(charts);
  return card;
}

function summary(publication) {
  const box = document.getElementById("summary");
  box.replaceChildren();
  const served = publication.indicators.find((i) => i.indicator === "youth_served")?.statewide.total;
  const cells = publication.indicators.flatMap((i) => [i.statewide, ...i.communities])
    .flatMap((b) => [b.total, ...b.by_age_band, ...(b.by_category ?? [])]);
  const withheld = cells.filter((f) => f.suppressed).length;
  const tiles = [
    ["Youth served", served ? headline("count", served) : "—"],
    ["Communities reporting", number.format(publication.nodes.length)],
    ["Figures suppressed", `${number.format(withheld)} of ${number.format(cells.length)}`],
  ];
  for (const [label, value] of tiles) {
    box.append(el("div", { class: "tile" }, el("span", { class: "tile-value" }, value), el("span", { class: "tile-label" }, label)));
  }
}

async function show(periods, period, vocabulary) {
  const main = document.getElementById("indicators");
  const index = periods.indexOf(period);
  const window = periods.slice(Math.max(0, index - MONTHS + 1), index + 1);
  const publications = await Promise.all(window.map((p) => getJson(`/hub/v1/indicators?period=${p}`)));
  const current = publications[publications.length - 1];
  summary(current);
  document.getElementById("communities").textContent = current.nodes.length
    ? current.nodes.join(", ") : "no community yet";
  document.getElementById("csv").href = `/hub/v1/indicators?period=${period}&format=csv`;
  main.replaceChildren();
  for (const def of vocabulary.indicators) {
    const now = current.indicators.find((i) => i.indicator === def.indicator);
    const series = publications.map((p, i) => ({
      period: window[i],
      figure: p.indicators.find((x) => x.indicator === def.indicator)?.statewide.total,
    }));
    main.append(card(def, now, series));
  }
  document.body.dataset.ready = period;
}

async function start() {
  const [{ periods, latest_complete: complete }, vocabulary] = await Promise.all([getJson("/hub/v1/periods"), getJson("/hub/v1/vocabulary")]);
  const select = document.getElementById("period");
  const main = document.getElementById("indicators");
  if (!periods.length) {
    main.replaceChildren(el("p", { class: "empty" }, "No community has reported yet."));
    document.body.dataset.ready = "none";
    return;
  }
  const sorted = [...periods].sort();
  for (const p of [...sorted].reverse()) select.append(el("option", { value: p }, monthLabel(p, true)));
  const wanted = new URLSearchParams(location.search).get("period");
  // Opens on the latest complete month (over, and reported by enough
  // communities), not on whatever month one community sent last.
  const fallback = sorted.includes(complete) ? complete : sorted[sorted.length - 1];
  select.value = sorted.includes(wanted) ? wanted : fallback;
  select.addEventListener("change", () => {
    history.replaceState(null, "", `?period=${select.value}`);
    show(sorted, select.value, vocabulary).catch(fail);
  });
  await show(sorted, select.value, vocabulary);
}

function fail(error) {
  document.getElementById("indicators").replaceChildren(el("p", { class: "error" }, `Could not load the figures: ${error.message}`));
  document.body.dataset.ready = "error";
}

start().catch(fail);

// mtasts dashboard: copy buttons, bar widths and the sessions chart. No inline scripts
// (the Content-Security-Policy allows scripts from this site only).
"use strict";

function copyText(text, button) {
  const done = () => {
    const label = button.textContent;
    button.textContent = document.body.dataset.copied || "Copied";
    button.classList.add("copied");
    setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
}

function fallbackCopy(text, done) {
  // plain http (not localhost): no Clipboard API, select a hidden textarea instead
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); done(); } finally { area.remove(); }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const source = button.dataset.copyFrom ? document.getElementById(button.dataset.copyFrom) : null;
  copyText(source ? source.textContent.trim() : button.dataset.copy || "", button);
});

// forms that undo something ask first (e.g. revoking an API token)
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

function widths(root) {
  root.querySelectorAll("[data-width]").forEach((el) => { el.style.width = el.dataset.width + "%"; });
}

function sessionsChart() {
  const canvas = document.getElementById("sessions-chart");
  const source = document.getElementById("chart-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const names = data.names;  // in the page's language
  const styles = getComputedStyle(document.documentElement);
  const ok = styles.getPropertyValue("--ok").trim() || "#2e7d32";
  const bad = styles.getPropertyValue("--bad").trim() || "#c62828";
  const ink = styles.getPropertyValue("--muted").trim() || "#555";
  Chart.defaults.color = ink;
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        { label: names.successful, data: data.successful, backgroundColor: ok, stack: "s" },
        { label: names.failed, data: data.failed, backgroundColor: bad, stack: "s" },
        { label: names.rate, data: data.rate, type: "line", yAxisID: "rate",
          borderColor: ink, backgroundColor: ink, pointRadius: 2, tension: 0.2,
          spanGaps: false },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true } },
        // sessions are whole numbers: no 0.5 ticks on quiet days
        y: { stacked: true, beginAtZero: true, ticks: { precision: 0 },
             title: { display: true, text: names.sessions } },
        rate: { position: "right", beginAtZero: true, suggestedMax: 10,
                grid: { drawOnChartArea: false }, title: { display: true, text: names.failed_percent } },
      },
    },
  });
  canvas.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => { widths(document); sessionsChart(); });
document.addEventListener("htmx:afterSwap", (event) => widths(event.target));

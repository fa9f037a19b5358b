// A small canvas line chart: events per second per channel over a sliding window. No library.

export const COLORS = ["#0b5cad", "#b3261e", "#1b7f3b", "#7b3fa0", "#9a5a00", "#00727a", "#5c5c5c", "#c2185b"];
/** Line dash of each series (by index), also drawn in the legend: colour is never the only signal. */
export const DASHES = [[], [6, 3], [2, 3], [8, 3, 2, 3], [1, 2], [10, 4], [4, 4], [3, 6]];

export class RateChart {
  /** @param {HTMLCanvasElement} canvas */
  constructor(canvas, seconds = 60) {
    this.canvas = canvas;
    this.seconds = seconds;
  }
  /** @param {{color: string, dash: number, values: number[]}[]} series values oldest → newest, one per second */
  draw(series) {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const cssW = c.clientWidth || c.width;
    const cssH = Math.round((cssW * 220) / 640);
    if (c.width !== Math.round(cssW * ratio)) {
      c.width = Math.round(cssW * ratio);
      c.height = Math.round(cssH * ratio);
    }
    const g = c.getContext("2d");
    if (!g) return;
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const w = cssW;
    const h = cssH;
    g.clearRect(0, 0, w, h);
    const left = 38;
    const bottom = h - 20;
    const top = 10;
    const right = w - 8;
    let peak = 1;
    for (const s of series) for (const v of s.values) peak = Math.max(peak, v);
    // Four gridlines a whole, round number of events/s apart.
    const step = niceStep(peak / 4);
    const max = step * 4;
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#4a5563";
    g.strokeStyle = "#e3e7ec";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = bottom - ((bottom - top) * i) / 4;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(right, y);
      g.stroke();
      g.fillText(String(step * i), 4, y + 4);
    }
    g.fillText(`-${this.seconds}s`, left, h - 5);
    g.fillText("now", right - 22, h - 5);
    const n = this.seconds;
    const x = (i) => left + ((right - left) * i) / (n - 1);
    for (const s of series) {
      g.strokeStyle = s.color;
      g.lineWidth = 2;
      g.setLineDash(DASHES[s.dash % DASHES.length]);
      g.beginPath();
      s.values.forEach((v, i) => {
        const y = bottom - ((bottom - top) * v) / max;
        if (i === 0) g.moveTo(x(i), y);
        else g.lineTo(x(i), y);
      });
      g.stroke();
    }
    g.setLineDash([]);
  }
}

/** The smallest of 1, 2, 5, 10, 20, 50, … at least `v`. */
function niceStep(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5]) if (v <= m * p) return m * p;
  return 10 * p;
}

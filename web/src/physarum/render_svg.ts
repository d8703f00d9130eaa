// SVG fallback renderer: one <line class="tube"> per alive tube (same geometry
// and colours as the WebGL renderer), plus a circle per food source.

import { type Frame, tubeRGB } from "./scene";

const NS = "http://www.w3.org/2000/svg";

export class SvgRenderer {
  readonly kind = "svg";
  private readonly tubes: SVGGElement;
  private readonly foods: SVGGElement;

  constructor(readonly svg: SVGSVGElement) {
    const bg = document.createElementNS(NS, "rect");
    bg.setAttribute("width", "100%");
    bg.setAttribute("height", "100%");
    bg.setAttribute("fill", "#0a0d14");
    this.tubes = document.createElementNS(NS, "g");
    this.foods = document.createElementNS(NS, "g");
    svg.append(bg, this.tubes, this.foods);
  }

  draw(frame: Frame): number {
    const lines = frame.segments.map((s) => {
      const l = document.createElementNS(NS, "line");
      l.setAttribute("class", "tube");
      l.setAttribute("x1", s.x1.toFixed(1));
      l.setAttribute("y1", s.y1.toFixed(1));
      l.setAttribute("x2", s.x2.toFixed(1));
      l.setAttribute("y2", s.y2.toFixed(1));
      l.setAttribute("stroke-width", s.width.toFixed(2));
      const [r, g, b] = tubeRGB(s.glow);
      l.setAttribute("stroke", `rgb(${Math.round(r * 255)},${Math.round(g * 255)},${Math.round(b * 255)})`);
      l.setAttribute("stroke-linecap", "round");
      return l;
    });
    this.tubes.replaceChildren(...lines);
    this.foods.replaceChildren(...frame.food.map((f) => {
      const c = document.createElementNS(NS, "circle");
      c.setAttribute("class", "food");
      c.setAttribute("cx", f.x.toFixed(1));
      c.setAttribute("cy", f.y.toFixed(1));
      c.setAttribute("r", "5");
      c.setAttribute("fill", "#4de66a");
      return c;
    }));
    return lines.length;
  }
}

// WebGL renderer: every tube is a screen-space quad (two triangles) whose width
// follows the tube radius and whose colour follows |flow|.

import { type Frame, tubeRGB } from "./scene";

const VS = `attribute vec2 a_pos; attribute vec3 a_col; uniform vec2 u_size; varying vec3 v_col;
void main() { vec2 c = a_pos / u_size * 2.0 - 1.0; gl_Position = vec4(c.x, -c.y, 0.0, 1.0); v_col = a_col; }`;
const FS = `precision mediump float; varying vec3 v_col; void main() { gl_FragColor = vec4(v_col, 1.0); }`;

export class GlRenderer {
  readonly kind = "webgl";
  private readonly prog: WebGLProgram;
  private readonly buf: WebGLBuffer;

  private constructor(private readonly gl: WebGLRenderingContext, private readonly canvas: HTMLCanvasElement) {
    const sh = (type: number, src: string): WebGLShader => {
      const s = gl.createShader(type)!;
      gl.shaderSource(s, src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s) ?? "shader");
      return s;
    };
    const p = gl.createProgram()!;
    gl.attachShader(p, sh(gl.VERTEX_SHADER, VS));
    gl.attachShader(p, sh(gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error("link failed");
    this.prog = p;
    this.buf = gl.createBuffer()!;
  }

  /** Null when WebGL is unavailable (the caller falls back to SVG). */
  static create(canvas: HTMLCanvasElement): GlRenderer | null {
    let gl: WebGLRenderingContext | null = null;
    try {
      gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: true });
    } catch {
      gl = null;
    }
    if (!gl) return null;
    try {
      return new GlRenderer(gl, canvas);
    } catch {
      return null;
    }
  }

  draw(frame: Frame): number {
    const { gl, canvas } = this;
    const w = canvas.width, h = canvas.height;
    const data: number[] = [];
    const quad = (x1: number, y1: number, x2: number, y2: number, width: number, rgb: [number, number, number]): void => {
      const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy) || 1;
      const nx = (-dy / len) * width * 0.5, ny = (dx / len) * width * 0.5;
      const v = [[x1 + nx, y1 + ny], [x1 - nx, y1 - ny], [x2 + nx, y2 + ny], [x2 + nx, y2 + ny], [x1 - nx, y1 - ny], [x2 - nx, y2 - ny]];
      for (const [x, y] of v) data.push(x!, y!, rgb[0], rgb[1], rgb[2]);
    };
    for (const s of frame.segments) quad(s.x1, s.y1, s.x2, s.y2, s.width, tubeRGB(s.glow));
    for (const f of frame.food) quad(f.x - 5, f.y, f.x + 5, f.y, 10, [0.3, 0.9, 0.4]);
    gl.viewport(0, 0, w, h);
    gl.clearColor(0.04, 0.05, 0.08, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(this.prog);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(data), gl.DYNAMIC_DRAW);
    const aPos = gl.getAttribLocation(this.prog, "a_pos"), aCol = gl.getAttribLocation(this.prog, "a_col");
    gl.enableVertexAttribArray(aPos);
    gl.vertexAttribPointer(aPos, 2, gl.FLOAT, false, 20, 0);
    gl.enableVertexAttribArray(aCol);
    gl.vertexAttribPointer(aCol, 3, gl.FLOAT, false, 20, 8);
    gl.uniform2f(gl.getUniformLocation(this.prog, "u_size"), w, h);
    gl.drawArrays(gl.TRIANGLES, 0, data.length / 5);
    return frame.segments.length;
  }
}

// Generates the app icons (PNG + SVG) into public/icons/ with no dependencies:
// a white heart on a calm teal rounded square. Run by `npm run build`.
import { deflateSync } from "node:zlib";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const out = join(dirname(fileURLToPath(import.meta.url)), "..", "public", "icons");
mkdirSync(out, { recursive: true });

const TEAL = [0x2f, 0x6f, 0x73];
const CREAM = [0xfb, 0xf8, 0xf3];

const crcTable = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** Inside the heart curve (x²+y²−1)³ − x²y³ ≤ 0, in heart units. */
function inHeart(x, y) {
  const a = x * x + y * y - 1;
  return a * a * a - x * x * y * y * y <= 0;
}

/** size×size RGBA; `maskable` fills the whole square (the OS applies its mask). */
function icon(size, maskable) {
  const raw = Buffer.alloc((size * 4 + 1) * size);
  const radius = maskable ? 0 : size * 0.22;
  const scale = maskable ? 0.34 : 0.42; // heart half-width as a fraction of the icon
  const S = 4; // supersampling per axis
  for (let py = 0; py < size; py++) {
    raw[py * (size * 4 + 1)] = 0; // filter: none
    for (let px = 0; px < size; px++) {
      let bg = 0;
      let heart = 0;
      for (let sy = 0; sy < S; sy++) {
        for (let sx = 0; sx < S; sx++) {
          const x = px + (sx + 0.5) / S;
          const y = py + (sy + 0.5) / S;
          // rounded square
          const cx = Math.min(Math.max(x, radius), size - radius);
          const cy = Math.min(Math.max(y, radius), size - radius);
          const inside = radius === 0 || (x - cx) ** 2 + (y - cy) ** 2 <= radius * radius;
          if (!inside) continue;
          bg++;
          const hx = (x - size / 2) / (size * scale) * 1.25;
          const hy = -(y - size * 0.53) / (size * scale) * 1.25;
          if (inHeart(hx, hy)) heart++;
        }
      }
      const n = S * S;
      const o = py * (size * 4 + 1) + 1 + px * 4;
      const t = heart / Math.max(bg, 1);
      for (let i = 0; i < 3; i++) raw[o + i] = Math.round(TEAL[i] * (1 - t) + CREAM[i] * t);
      raw[o + 3] = Math.round((bg / n) * 255);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

writeFileSync(join(out, "icon-192.png"), icon(192, false));
writeFileSync(join(out, "icon-512.png"), icon(512, false));
writeFileSync(join(out, "maskable-512.png"), icon(512, true));
writeFileSync(join(out, "apple-touch-icon.png"), icon(180, true));
writeFileSync(
  join(out, "icon.svg"),
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
  <rect width="100" height="100" rx="22" fill="#2f6f73"/>
  <path fill="#fbf8f3" d="M50 82 C22 62 14 48 14 36 C14 24 23 16 33 16 C41 16 47 21 50 28 C53 21 59 16 67 16 C77 16 86 24 86 36 C86 48 78 62 50 82 Z"/>
</svg>
`,
);
console.log(`icons written to ${out}`);

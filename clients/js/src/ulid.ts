const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

let lastTime = -1;
let lastRandom: number[] = [];

function randomDigits(): number[] {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b % 32);
}

/**
 * A new ULID (26 Crockford base-32 characters: 48-bit ms time + 80 random
 * bits). Monotonic within one millisecond, so ids made in a row sort in
 * creation order like the node's.
 */
export function ulid(now: number = Date.now()): string {
  let random: number[];
  if (now === lastTime) {
    random = lastRandom.slice();
    let i = random.length - 1;
    while (i >= 0 && random[i] === 31) {
      random[i] = 0;
      i--;
    }
    if (i >= 0) random[i]! += 1;
  } else {
    random = randomDigits();
    lastTime = now;
  }
  lastRandom = random;
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  return time + random.map((d) => ALPHABET[d]).join("");
}

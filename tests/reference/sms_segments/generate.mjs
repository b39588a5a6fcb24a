// Writes the SMS segment corpus to standard output, one JSON object per line:
//
//   {"cat": "...", "text": "...",
//    "twilio":    {"encoding": "gsm7" | "ucs2", "units": N, "segments": N},
//    "split_sms": {"encoding": "gsm7" | "ucs2", "units": N, "segments": N},
//    "cuts_cluster": true | false}
//
// `twilio` is Twilio's segment calculator (npm `sms-segments-calculator`),
// `split_sms` is the npm package `split-sms`. `units` is GSM-7 septets or
// UTF-16 code units, without the concatenation header. `cuts_cluster` says
// that split-sms, which keeps surrogate pairs whole but nothing longer, cuts
// a grapheme cluster of several code points (an emoji ZWJ sequence, a flag, a
// letter and its combining mark) between two segments; Twilio never does,
// which is the one rule ninsho does not follow (see README.md).
//
// The corpus is deterministic: the same package versions give the same file.
// How to re-run it: README.md beside this file.

import GraphemeSplitter from 'grapheme-splitter';
import calculator from 'sms-segments-calculator';
import splitSms from 'split-sms';

const { SegmentedMessage } = calculator;
const graphemes = new GraphemeSplitter();

// ---------------------------------------------------------------- references

function twilio(text) {
  const m = new SegmentedMessage(text);
  const gsm = m.encodingName === 'GSM-7';
  return {
    encoding: gsm ? 'gsm7' : 'ucs2',
    units: m.messageSize / (gsm ? 7 : 16),
    segments: m.segmentsCount,
  };
}

function splitSmsInfo(text) {
  const r = splitSms.split(text);
  const gsm = r.characterSet === splitSms.GSM;
  return {
    encoding: gsm ? 'gsm7' : 'ucs2',
    units: gsm ? r.bytes : r.bytes / 2,
    segments: r.parts.length,
    parts: r.parts,
  };
}

// Whether split-sms cuts `text` inside a grapheme cluster (as Twilio's
// calculator splits them: with CR LF taken as two).
function cutsCluster(text, parts) {
  if (parts.length < 2) return false;
  const boundaries = new Set([0]);
  let at = 0;
  for (const g of graphemes.splitGraphemes(text)) {
    if (g === '\r\n') boundaries.add(at + 1);
    at += g.length;
    boundaries.add(at);
  }
  let cut = 0;
  for (const part of parts.slice(0, -1)) {
    cut += part.content.length;
    if (!boundaries.has(cut)) return true;
  }
  return false;
}

const cases = [];
const seen = new Set();

function add(cat, text) {
  const key = `${cat}\u0000${text}`;
  if (seen.has(key)) return;
  seen.add(key);
  const s = splitSmsInfo(text);
  cases.push({
    cat,
    text,
    twilio: twilio(text),
    split_sms: { encoding: s.encoding, units: s.units, segments: s.segments },
    cuts_cluster: cutsCluster(text, s.parts),
  });
}

// ------------------------------------------------------------------ helpers

const rep = (s, n) => (n > 0 ? s.repeat(n) : '');
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

// `filler` repeated so that `piece` starts at unit `at` (0-based, in the
// encoding's units) and the whole text is `total` units; `size` is the
// piece's size and `unit` the filler's.
function place(filler, piece, at, size, total) {
  if (at < 0 || total < at + size) return null;
  return rep(filler, at) + piece + rep(filler, total - at - size);
}

// Totals around each boundary of the packing: single/multi limits.
function totalsNear(single, multi, count) {
  const totals = [single - 1, single, single + 1, single + 2];
  for (let k = 2; k <= count; k++) {
    totals.push(k * multi - 1, k * multi, k * multi + 1, k * multi + 2);
  }
  return totals;
}

// Positions of the unit that could straddle each segment's end.
function positionsNear(single, multi, count) {
  const at = [single - 2, single - 1, single];
  for (let k = 1; k < count; k++) {
    at.push(k * multi - 2, k * multi - 1, k * multi, k * multi + 1);
  }
  return at;
}

// ------------------------------------------------------- boundary corpora

// GSM-7: an escape pair (2 septets) at every position around 152/153,
// 305/306, 458/459 and the single-segment limit 159/160.
const ESCAPES = ['€', '{', '}', '[', ']', '~', '|', '^', '\\', '\f'];
for (const [i, x] of ESCAPES.entries()) {
  // Every escape at the first boundary; a few at the later ones.
  const positions = positionsNear(160, 153, i === 0 ? 4 : i < 3 ? 3 : 2);
  for (const at of positions) {
    // Texts that end within a segment after the pair: a later boundary
    // adds nothing the earlier cases don't test.
    for (const total of totalsNear(160, 153, 4).filter((t) => t <= at + 160)) {
      const text = place('a', x, at, 2, total);
      if (text !== null) add('gsm7_escape_boundary', text);
    }
  }
}
// Runs of escapes, and escapes between basic characters.
for (const n of [79, 80, 81, 152, 153, 154, 229, 230, 231]) {
  add('gsm7_escape_runs', rep('€', n));
  add('gsm7_escape_runs', rep('a€', Math.ceil(n / 1.5)));
  add('gsm7_escape_runs', rep('{}', Math.ceil(n / 2)) + 'a');
}
// Plain GSM-7 lengths, including the non-ASCII basic characters.
for (const total of [0, 1, ...totalsNear(160, 153, 5)]) {
  add('gsm7_plain', rep('a', total));
  add('gsm7_plain', rep('ÄΩ@£', Math.floor(total / 4)) + rep('é', total % 4));
}

// UCS-2: a surrogate pair (2 units) around 66/67, 133/134, 200/201 and the
// single-segment limit 69/70, in Japanese and in ASCII forced to UCS-2.
const ASTRAL = ['😀', '𠮷', '🎉'];
for (const [i, x] of ASTRAL.entries()) {
  for (const filler of ['あ', 'a']) {
    const positions = positionsNear(70, 67, i === 0 ? 4 : 3);
    // Japanese filler at the first boundary; ASCII (forced to UCS-2 by one
    // Japanese character) at all of them, which keeps the file small.
    for (const at of positions.filter((p) => filler === 'a' || p <= 70)) {
      for (const total of totalsNear(70, 67, 4).filter((t) => t <= at + 70)) {
        let text = place(filler, x, at, 2, total);
        if (text === null) continue;
        if (filler === 'a') {
          // One Japanese character at the start makes the whole text UCS-2.
          if (at === 0) continue;
          text = 'あ' + text.slice(1);
        }
        add('ucs2_surrogate_boundary', text);
      }
    }
  }
}
// Runs of surrogate pairs: every segment ends on an odd or even unit.
for (const n of [34, 35, 36, 66, 67, 68, 100, 101, 102]) {
  add('ucs2_surrogate_runs', rep('😀', n));
  add('ucs2_surrogate_runs', 'あ' + rep('😀', n));
  add('ucs2_surrogate_runs', rep('あ😀', Math.ceil((2 * n) / 3)));
}
// Plain UCS-2 lengths, and GSM extension characters inside UCS-2 (one
// UTF-16 unit each there, not two).
for (const total of [1, ...totalsNear(70, 67, 5)]) {
  add('ucs2_plain', rep('あ', total));
  add('ucs2_plain', 'あ' + rep('€', total - 1));
  add('ucs2_plain', 'ア' + rep('{a', Math.floor((total - 1) / 2)) + rep('b', (total - 1) % 2));
}

// ----------------------------------------------------- encoding choice

// Characters that look like GSM 03.38 ones but are not in it (or are, with
// a different case), alone and inside texts of either encoding.
const LOOKALIKES = [
  'ç', 'Ç', '\f', '`', '\u001b', '\t', '\u000b', '\u0000', 'ê', 'á', 'í', 'ó', 'ú',
  '\u00a0', '\u2019', '\u201c', '¢', 'ǲ', 'А', 'Α', 'Β', 'Ο', 'π', 'ω', 'Ä', 'ä',
  'ÿ', 'Š', '１', '＠', '－', '～', '¥', '￥', '$', '¤', '§', '¿', '¡', '\r', '\n',
  '\r\n', '_', '\u0394', '\u2206', 'µ', 'ß', 'Æ', 'œ', '€', '£', '\u200b', '\ufeff',
];
for (const c of LOOKALIKES) {
  add('encoding_choice', c);
  add('encoding_choice', `Your code is 123456${c}`);
  add('encoding_choice', rep('a', 159) + c);
  add('encoding_choice', rep('a', 160) + c);
  add('encoding_choice', rep('b', 69) + c);
  add('encoding_choice', c + rep('€', 79));
}

// CR LF is one grapheme cluster, but Twilio counts it as two characters;
// put it across every boundary.
for (const at of positionsNear(160, 153, 3)) {
  for (const total of totalsNear(160, 153, 3)) {
    const text = place('a', '\r\n', at, 2, total);
    if (text !== null) add('gsm7_crlf_boundary', text);
  }
}

// ------------------------------------------------- grapheme clusters

// `place` in UCS-2: Japanese filler, or ASCII filler made UCS-2 by a
// Japanese first character (a smaller file for the same boundaries).
function ucs2Place(piece, at, size, total, japanese) {
  if (japanese) return place('あ', piece, at, size, total);
  const text = place('a', piece, at, size, total);
  return text === null || at === 0 ? text : 'あ' + text.slice(1);
}

// Clusters longer than one code point, put across each UCS-2 boundary at
// every offset. Twilio keeps each whole; split-sms (and ninsho) keep only
// surrogate pairs whole.
const CLUSTERS = {
  grapheme_zwj_emoji: ['👨‍👩‍👧', '🏳️‍🌈', '👩🏽‍💻'],
  grapheme_flag: ['🇯🇵', '🇺🇸'],
  grapheme_skin_tone: ['👍🏽', '🙏🏻'],
  grapheme_keycap: ['1️⃣', '#️⃣'],
  grapheme_variation_selector: ['❤️', '☺️'],
  grapheme_combining_mark: ['e\u0301', 'か\u3099', 'a\u0308\u0304'],
  grapheme_hangul_jamo: ['\u1100\u1161\u11a8'],
};
for (const [cat, clusters] of Object.entries(CLUSTERS)) {
  for (const cluster of clusters) {
    const size = cluster.length;
    for (const boundary of [67, 134]) {
      // The cluster starts a little before the boundary, on it, or after.
      for (let at = boundary - size; at <= boundary + 1; at++) {
        // A text whose last segment has room to spare, and texts that fill
        // the next segment or nearly: pushing the whole cluster over then
        // costs one more segment.
        const next = boundary + 67;
        const totals = [boundary + 4, next - size, next - 1, next, next + 1];
        for (const total of totals) {
          const text = ucs2Place(cluster, at, size, Math.max(total, at + size), boundary === 67);
          if (text !== null) add(cat, text);
        }
      }
    }
    // Around the single-segment limit.
    for (let at = 70 - size - 1; at <= 70; at++) {
      for (const total of [70, 71, 72]) {
        const text = ucs2Place(cluster, at, size, total, true);
        if (text !== null) add(cat, text);
      }
    }
  }
}

// ---------------------------------------------------------------- random

// mulberry32: a small seeded PRNG, so the corpus is the same every run.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = mulberry32(13);
const pick = (xs) => xs[Math.floor(random() * xs.length)];

const GSM_BASIC = [
  ...'@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?',
  ...'¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà',
];
const JAPANESE = [...'あいうえおかきくけこアイウエオ認証コード有効期限分間本人確認、。「」【】：（）ー'];
const EMOJI = ['😀', '🎉', '𠮷', '🔐', '📱'];
const ALPHABETS = {
  random_gsm7: [[GSM_BASIC, 1]],
  random_gsm7_escapes: [
    [GSM_BASIC, 6],
    [ESCAPES, 1],
  ],
  random_ucs2_japanese: [
    [JAPANESE, 4],
    [GSM_BASIC, 3],
    [ESCAPES, 1],
  ],
  random_ucs2_emoji: [
    [JAPANESE, 3],
    [GSM_BASIC, 3],
    [ESCAPES, 1],
    [EMOJI, 2],
  ],
  random_mixed_clusters: [
    [JAPANESE, 3],
    [GSM_BASIC, 3],
    [ESCAPES, 1],
    [EMOJI, 1],
    [Object.values(CLUSTERS).flat(), 1],
  ],
};
// Lengths spread over 0..400 code points, with more near the boundaries.
const BOUNDARY_LENGTHS = [70, 134, 160, 201, 268, 306];
function randomLength() {
  if (random() < 0.5) return Math.floor(random() * 401);
  return Math.max(0, pick(BOUNDARY_LENGTHS) + Math.floor(random() * 9) - 6);
}
function randomText(alphabet) {
  const weights = alphabet.reduce((sum, [, w]) => sum + w, 0);
  const n = randomLength();
  let text = '';
  for (let i = 0; i < n; i++) {
    let r = random() * weights;
    let set = alphabet[0][0];
    for (const [chars, w] of alphabet) {
      if (r < w) {
        set = chars;
        break;
      }
      r -= w;
    }
    text += pick(set);
  }
  return text;
}
const PER_ALPHABET = {
  random_gsm7: 300,
  random_gsm7_escapes: 500,
  random_ucs2_japanese: 300,
  random_ucs2_emoji: 300,
  random_mixed_clusters: 300,
};
for (const [cat, alphabet] of Object.entries(ALPHABETS)) {
  for (let i = 0; i < PER_ALPHABET[cat]; i++) add(cat, randomText(alphabet));
}

// ----------------------------------------------------------------- output

for (const c of cases) process.stdout.write(`${JSON.stringify(c)}\n`);
const summary = {};
for (const c of cases) summary[c.cat] = (summary[c.cat] ?? 0) + 1;
process.stderr.write(`${cases.length} cases\n${JSON.stringify(summary, null, 1)}\n`);

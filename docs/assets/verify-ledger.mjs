#!/usr/bin/env node
// Verify a hitl-compliance audit export (JSON Lines) without Python.
//
// Written from the procedure in docs/concepts/audit.md ("Verifying without
// Python"); node >= 18, no npm packages. Format-2 rows are hashed over their
// RFC 8785 (JCS) form, format-3 rows (a store with lanes) too, with their `lane`; format-1 rows (written before format 2) over Python's
// json.dumps form, which needs each number exactly as the export spells it, so
// the export is parsed by a small JSON reader that keeps number tokens.
//
//   node verify-ledger.mjs audit.jsonl           ok / BROKEN, like ledger.py
//   node verify-ledger.mjs --hashes audit.jsonl  each row's seq and computed hash
//
// Exit status: 0 the export verifies, 1 a row is broken, 2 usage or an
// unreadable file.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

const GENESIS = "0".repeat(64);
const FIELDS = ["seq", "thread_id", "review_id", "checkpoint_id", "event", "actor",
  "payload", "at", "prev_hash", "global_prev_hash"];

// A JSON number as written, so format 1 can reproduce Python's spelling.
class Num {
  constructor(raw) { this.raw = raw; }
  get value() { return Number(this.raw); }
}
const num = (v) => (v instanceof Num ? v.value : v);

// JSON text to values; numbers become Num, objects have no prototype (so a
// "__proto__" key is an ordinary key), a repeated key keeps its last value.
function parseJson(text) {
  let i = 0;
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const fail = () => { throw new Error(`invalid JSON at offset ${i}`); };
  const ws = () => { while (" \t\n\r".includes(text[i]) && i < text.length) i++; };
  const string = () => {
    let j = i + 1;
    while (text[j] !== '"') { if (j >= text.length) fail(); j += text[j] === "\\" ? 2 : 1; }
    const s = JSON.parse(text.slice(i, j + 1));
    i = j + 1;
    return s;
  };
  const value = () => {
    ws();
    if (text[i] === "{" || text[i] === "[") {
      const isObject = text[i++] === "{", close = isObject ? "}" : "]";
      const out = isObject ? Object.create(null) : [];
      ws();
      if (text[i] === close) { i++; return out; }
      for (;;) {
        if (isObject) {
          ws();
          if (text[i] !== '"') fail();
          const key = string();
          ws();
          if (text[i++] !== ":") fail();
          out[key] = value();
        } else out.push(value());
        ws();
        const c = text[i++];
        if (c === close) return out;
        if (c !== ",") fail();
      }
    }
    if (text[i] === '"') return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) { i += word.length; return v; }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail();
    i += m[0].length;
    return new Num(m[0]);
  };
  const v = value();
  ws();
  if (i !== text.length) fail();
  return v;
}

// Format 2, RFC 8785 section 3.2: literals; numbers as ECMAScript's
// Number.prototype.toString (-0 as 0); strings as JSON.stringify escapes them;
// object keys sorted by UTF-16 code units (JavaScript's default string order).
function jcs(value) {
  if (value instanceof Num) {
    const n = value.value;
    if (!Number.isFinite(n)) throw new Error(`${value.raw} has no JCS form`);
    // An integer must be exactly the double it reads as (all within +/-(2**53-1) are).
    if (/^-?\d+$/.test(value.raw) && BigInt(value.raw) !== BigInt(n)) {
      throw new Error(`integer ${value.raw} is not exactly a double`);
    }
    return Object.is(n, -0) ? "0" : String(n);
  }
  if (value === null || typeof value === "boolean") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(jcs).join(",") + "]";
  const keys = Object.keys(value).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + jcs(value[k])).join(",") + "}";
}

// Format 1, Python's json.dumps(sort_keys=True, separators=(",", ":"),
// ensure_ascii=False): numbers as written, keys sorted by code points.
function py1(value) {
  if (value instanceof Num) return value.raw;
  if (value === null || typeof value === "boolean") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(py1).join(",") + "]";
  const keys = Object.keys(value).sort(byCodePoint);
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + py1(value[k])).join(",") + "}";
}

function byCodePoint(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0)), y = Array.from(b, (c) => c.codePointAt(0));
  for (let k = 0; k < Math.min(x.length, y.length); k++) if (x[k] !== y[k]) return x[k] - y[k];
  return x.length - y.length;
}

// `at` as ISO-8601 UTC with microseconds. Exports already write it so; only
// an offset other than +00:00 is converted (microseconds kept from the text).
function formatAt(at) {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)$/.exec(at);
  if (!m) throw new Error(`at ${JSON.stringify(at)} is not an ISO-8601 timestamp`);
  const micro = (m[2] ?? "").padEnd(6, "0");
  if (m[3] === "+00:00" || m[3] === "Z") return `${m[1]}.${micro}+00:00`;
  const utc = new Date(`${m[1]}${m[3]}`).toISOString().slice(0, 19);
  return `${utc}.${micro}+00:00`;
}

function formatOf(row) {
  return row.ledger_format === undefined ? new Num("1") : row.ledger_format;
}

function canonical(row) {
  const content = Object.create(null);
  for (const name of FIELDS) content[name] = row[name] === undefined ? null : row[name];
  content.at = formatAt(row.at);
  const format = formatOf(row);
  if (format instanceof Num && format.raw === "1") return Buffer.from(py1(content), "utf8");
  if (format instanceof Num && (format.raw === "2" || format.raw === "3")) {
    content.ledger_format = format;
    if (format.raw === "3") content.lane = row.lane === undefined ? null : row.lane;
    return Buffer.from(jcs(content), "utf8");
  }
  throw new Error(`unknown ledger_format ${format instanceof Num ? format.raw : JSON.stringify(format)}`);
}

const rowHash = (row) => createHash("sha256").update(canonical(row)).digest("hex");

// Rows retention removed, as `pruned` rows list them: seq -> [thread id, hash].
function documented(rows) {
  const removed = new Map();
  for (const row of rows) {
    const listed = row.event === "pruned" && row.payload && row.payload.removed;
    if (!Array.isArray(listed)) continue;
    for (const item of listed) {
      if (Array.isArray(item) && item.length === 2 && item[0] instanceof Num && /^-?\d+$/.test(item[0].raw)) {
        removed.set(item[0].value, [String(row.thread_id), String(item[1])]);
      }
    }
  }
  return removed;
}

// The listed hash of the thread's last pruned row between seqs `after` and `before`.
function threadGap(pruned, tid, after, before) {
  let found = null;
  for (const [seq, [thread, hash]] of pruned) {
    if (thread === tid && seq > after && seq < before && (found === null || seq > found[0])) found = [seq, hash];
  }
  return found === null ? null : found[1];
}

// One chain: the listed hash of row `before - 1` when every seq between two rows is listed.
function globalGap(pruned, after, before) {
  if (before - after < 2) return [];
  for (let s = after + 1; s < before; s++) if (!pruned.has(s)) return [];
  return [pruned.get(before - 1)[1]];
}

// Several lanes: the listed hashes of every pruned row between two rows of a lane.
function laneGap(pruned, after, before) {
  return [...pruned].filter(([seq]) => seq > after && seq < before).map(([, [, hash]]) => hash);
}

// The lane a row is chained in: its `lane` in format 3, else 0; -1 when not an integer.
function laneOf(row) {
  const format = formatOf(row);
  if (!(format instanceof Num && format.raw === "3")) return 0;
  return row.lane instanceof Num && /^\d+$/.test(row.lane.raw) ? row.lane.value : -1;
}

// The store's head from its lanes' last rows: lane 0's [seq, hash] when it is the
// only lane with rows, else the largest seq and SHA-256 of [[lane, seq, hash], ...].
function combinedHead(lanePrev) {
  const live = [...lanePrev].filter(([, [seq]]) => seq > 0).sort((a, b) => a[0] - b[0]);
  if (live.length === 0) return null;
  if (live.length === 1 && live[0][0] === 0) return live[0][1];
  const text = JSON.stringify(live.map(([lane, [seq, hash]]) => [lane, seq, hash]));
  return [Math.max(...live.map(([, [seq]]) => seq)), createHash("sha256").update(text, "utf8").digest("hex")];
}

function verify(rows, head, onlyThread) {
  const threadPrev = new Map(), lanePrev = new Map();
  const pruned = documented(rows);
  // One chain (every row in lane 0): every skipped seq must be listed as pruned.
  const dense = rows.every((r) => laneOf(r) === 0);
  let lastSeq = 0, checked = 0;
  const headHash = () => { const h = combinedHead(lanePrev); return h === null ? null : h[1]; };
  const broken = (seq, thread, reason) => ({ ok: false, checked, seq, thread, reason, lastHash: headHash() });
  for (const row of rows) {
    const seq = num(row.seq), tid = String(row.thread_id), lane = laneOf(row);
    if (!(seq > lastSeq)) return broken(seq, tid, `seq ${seq} is not after seq ${lastSeq}: rows reordered`);
    let digest;
    try { digest = rowHash(row); } catch (e) {
      return broken(seq, tid, `the row cannot be hashed (${e.message}): the row was edited`);
    }
    if (digest !== row.hash) return broken(seq, tid, "hash does not match the row's content: the row was edited");
    if (lane < 0) return broken(seq, tid, "the row's lane is not an integer: the row was edited");
    if (pruned.has(seq)) return broken(seq, tid, "the row is listed as pruned by a tombstone but is still present");
    const [prevSeq, prevHash] = threadPrev.get(tid) ?? [0, GENESIS];
    if (row.prev_hash !== prevHash && row.prev_hash !== threadGap(pruned, tid, prevSeq, seq)) {
      return broken(seq, tid, "prev_hash does not link to the thread's previous row");
    }
    const [laneSeq, laneHash] = lanePrev.get(lane) ?? [0, GENESIS];
    if (onlyThread === null && row.global_prev_hash !== laneHash
        && !(dense ? globalGap : laneGap)(pruned, laneSeq, seq).includes(row.global_prev_hash)) {
      return broken(seq, tid, "global_prev_hash does not link to the previous row of its lane");
    }
    threadPrev.set(tid, [seq, row.hash]);
    lanePrev.set(lane, [seq, row.hash]);
    lastSeq = seq;
    checked += 1;
  }
  if (onlyThread === null && head !== null && !(checked === 0 && head.seq === 0)) {
    const found = combinedHead(lanePrev) ?? [0, null];
    if (head.seq !== found[0] || head.hash !== found[1]) {
      return broken(lastSeq || null, null,
        `the chain head (seq ${head.seq}) does not match the last row of each lane (last seq ${lastSeq})`);
    }
  }
  return { ok: true, checked, lastHash: headHash() };
}

class UsageError extends Error {}

function main(argv) {
  const hashes = argv[0] === "--hashes";
  const args = hashes ? argv.slice(1) : argv;
  if (args.length !== 1) throw new UsageError("usage: node verify-ledger.mjs [--hashes] EXPORT.jsonl");
  const rows = [];
  let head = null;
  readFileSync(args[0], "utf8").split("\n").forEach((line, i) => {
    if (line === "") return;
    let record;
    try { record = parseJson(line); } catch (e) {
      throw new UsageError(`line ${i + 1} is not an audit export line (${e.message})`);
    }
    if (record === null || typeof record !== "object" || Array.isArray(record) || record instanceof Num) {
      throw new UsageError(`line ${i + 1} is not an audit export line`);
    }
    if (record.type === "head") head = { seq: num(record.seq), hash: record.hash };
    else if ((record.type ?? "row") === "row") rows.push(record);
  });
  if (hashes) {
    for (const row of rows) {
      let digest;
      try { digest = rowHash(row); } catch (e) { digest = "unhashable"; }
      console.log(`${num(row.seq)}\t${digest}`);
    }
    return 0;
  }
  const threads = new Set(rows.map((r) => r.thread_id));
  const onlyThread = head === null && threads.size === 1 ? [...threads][0] : null;
  const report = verify(rows, head, onlyThread);
  if (report.ok) {
    console.log(`ok: ${report.checked} rows, chain head ${report.lastHash}`);
    return 0;
  }
  console.log(`BROKEN at seq ${report.seq} (thread ${JSON.stringify(report.thread)}): ${report.reason}`);
  return 1;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  console.error(`error: ${e.message}`);
  process.exitCode = 2;
}

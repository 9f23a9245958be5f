// The reference JSONata engine (npm jsonata) on the same records and transform as lorchestra.
//
//   node jsonata_reference.cjs JSONATA_DIR EXPR_FILE RECORDS_JSONL SAMPLE_OUT N_SAMPLE KIND SOURCE ACCOUNT
//
// The reference has none of lorchestra's registered helpers (engine/canon/functions.py), so
// the ones the benchmarked transform calls are re-implemented here with the same semantics
// ($decimal, $isoDate, $utc); bench/canonize.py checks on a sample that both engines give
// the same output. Per record: JSON.parse, evaluate (awaited: the 2.x API is async), add the
// envelope (kind, source, account), JSON.stringify. Prints one JSON line of timings.
"use strict";

const fs = require("fs");

const [jsonataDir, exprFile, recordsFile, sampleOut, nSampleText, kind, source, account] = process.argv.slice(2);
const jsonata = require(jsonataDir);

// ---------------------------------------------------------------- helpers (cf. functions.py)

function moneyText(value) {
  // "$1,234.50" -> "1234.50"; "($5.00)" and "-$5.00" -> "-5.00"
  let text = value.trim().replaceAll(",", "").replaceAll(" ", "").replaceAll("\u00a0", "");
  let negative = text.startsWith("(") && text.endsWith(")");
  if (negative) text = text.slice(1, -1);
  if (text.startsWith("-")) { negative = true; text = text.slice(1); }
  text = text.replace(/^[$€£¥]+/, "").replace(/[$€£¥]+$/, "");
  return negative ? "-" + text : text;
}

const DECIMAL = /^\s*([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/;

function decimal(value) {
  // An exact decimal string for money, at least two decimals (Python's Decimal + quantize).
  let text;
  if (value === undefined || value === null || typeof value === "boolean") return null;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return null;
    text = Object.is(value, -0) ? "-0.0" : String(value);
  } else if (typeof value === "string") {
    text = moneyText(value);
  } else {
    return null;
  }
  const m = DECIMAL.exec(text);
  if (!m || (!m[2] && !m[3])) return null;
  const sign = m[1] === "-" ? "-" : "";
  const frac = m[3] || "";
  let digits = ((m[2] || "") + frac).replace(/^0+/, "") || "0";
  let exponent = (m[4] ? parseInt(m[4], 10) : 0) - frac.length;
  if (exponent > -2) { digits = digits === "0" ? "0" : digits + "0".repeat(exponent + 2); exponent = -2; }
  const places = -exponent;
  digits = digits.padStart(places + 1, "0");
  return sign + digits.slice(0, digits.length - places) + "." + digits.slice(digits.length - places);
}

function validDate(y, mo, d) {
  if (y < 1 || mo < 1 || mo > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1];
  return d <= days;
}

const pad = (n, w) => String(n).padStart(w, "0");

function isoDate(text) {
  // A calendar date YYYY-MM-DD (also the date part of a timestamp), else null.
  if (typeof text !== "string" || text.trim().length < 10) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text.trim().slice(0, 10));
  if (!m) return null;
  const [y, mo, d] = [+m[1], +m[2], +m[3]];
  return validDate(y, mo, d) ? `${m[1]}-${m[2]}-${m[3]}` : null;
}

const INSTANT = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?(?:([+-])(\d{2})(?::?(\d{2}))?)?$/;

function utc(text) {
  // ISO 8601 / RFC 3339 -> UTC "YYYY-MM-DDTHH:MM:SS[.mmm]Z"; date-only unchanged; else null.
  if (typeof text !== "string") return null;
  let value = text.trim();
  if (value.length === 10) return isoDate(value);
  value = value.replace(/(\.\d+)/, (f) => f.slice(0, 7));
  if (value.endsWith("z") || value.endsWith("Z")) value = value.slice(0, -1) + "+00:00";
  const m = INSTANT.exec(value);
  if (!m) return null;
  const [y, mo, d, h] = [+m[1], +m[2], +m[3], +m[4]];
  const mi = m[5] ? +m[5] : 0, s = m[6] ? +m[6] : 0;
  const micros = m[7] ? +m[7].padEnd(6, "0") : 0;
  if (!validDate(y, mo, d) || h > 23 || mi > 59 || s > 59) return null;
  let offsetMin = 0;
  if (m[8]) {
    const oh = +m[9], om = m[10] ? +m[10] : 0;
    if (oh > 23 || om > 59) return null;
    offsetMin = (m[8] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi - offsetMin, s, 0);
  const yy = date.getUTCFullYear();
  if (yy < 1 || yy > 9999) return null;
  const wall = `${pad(yy, 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}` +
    `T${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}`;
  const millis = Math.floor(micros / 1000);
  return millis ? `${wall}.${pad(millis, 3)}Z` : `${wall}Z`;
}

// ---------------------------------------------------------------- the run

async function main() {
  const expr = jsonata(fs.readFileSync(exprFile, "utf8"));
  expr.registerFunction("decimal", decimal);
  expr.registerFunction("isoDate", isoDate);
  expr.registerFunction("utc", utc);
  expr.registerFunction("emailAddress", (t) =>
    typeof t === "string" ? t.trim().replace(/[A-Z]/g, (c) => c.toLowerCase()) : null);
  const lines = fs.readFileSync(recordsFile, "utf8").split("\n").filter((l) => l.length > 0);
  const nSample = parseInt(nSampleText, 10);
  const bindings = { source, account };
  const samples = [];
  let outBytes = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < lines.length; i++) {
    const record = JSON.parse(lines[i]);
    const result = await expr.evaluate(record, bindings);
    const doc = Object.assign({}, result, { kind, source, account });
    const text = JSON.stringify(doc);
    outBytes += text.length;
    if (i < nSample) samples.push(text);
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  fs.writeFileSync(sampleOut, samples.join("\n") + "\n");
  process.stdout.write(JSON.stringify({
    records: lines.length, wall_s: wall, cpu_s: (cpu.user + cpu.system) / 1e6, out_bytes: outBytes,
    node: process.version,
  }) + "\n");
}

main().catch((err) => { process.stderr.write(String(err && err.stack || err) + "\n"); process.exit(1); });

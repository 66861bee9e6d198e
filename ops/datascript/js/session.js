// Long-lived DataScript session for the generative differential tester (ops/datascript/fuzz.py).
// One JSON command per stdin line, one JSON answer per stdout line, so that a Python caller can
// run thousands of queries in one node process and time out (kill) a single slow query:
//   {"op": "load", "schema": {...}, "txs": [tx_data, ...]}  -> {"ok": true, "tx_ms": n} | {"error": "..."}
//   {"op": "q", "query": "EDN", "inputs": [...]}            -> {"value": ...} | {"error": "..."}
// Query inputs are passed as given (rule sets as EDN strings), as in runner.js.
const d = require("datascript");
// DataScript prints debugging lines through console.log (e.g. on an invalid or-join): keep stdout for answers
console.log = () => {};
const readline = require("readline");

let db = null;

function answer(cmd) {
  if (cmd.op === "load") {
    const conn = d.create_conn(cmd.schema || {});
    const t0 = process.hrtime.bigint();
    for (const tx of cmd.txs || []) d.transact(conn, tx);
    db = d.db(conn);
    return { ok: true, tx_ms: Number(process.hrtime.bigint() - t0) / 1e6 };
  }
  if (cmd.op === "q") {
    const value = d.q(cmd.query, db, ...(cmd.inputs || []));
    return { value: value === undefined ? null : value };
  }
  throw new Error("unknown op " + cmd.op);
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let out;
  try {
    out = answer(JSON.parse(line));
  } catch (e) {
    out = { error: String(e && e.message ? e.message : e) };
  }
  let text;
  try {
    text = JSON.stringify(out);
  } catch (e) {
    text = JSON.stringify({ error: "unserialisable result: " + String(e) });
  }
  process.stdout.write(text + "\n");
});

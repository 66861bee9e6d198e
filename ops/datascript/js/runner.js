// DataScript reference runner for the sessiondb Datalog differential tests and benchmark.
// Reads one JSON document on stdin:
//   {"schema": {...}, "txs": [tx_data, ...], "queries": [{"query": "EDN", "inputs": [...], "repeat": n}],
//    "pulls": [{"pattern": "EDN", "eids": [lookup refs], "single": bool, "repeat": n}]}
// Prints {"tx_ms": ..., "results": [{"value": ...} | {"error": "..."}], "pulls": [...]}.
// Query inputs are passed as given (rules as EDN strings); when "repeat" is set the
// query runs that many times; "ms" is the median wall time, "cpu_ms" the median CPU time.
const d = require("datascript");

function readStdin() {
  return new Promise((resolve) => {
    let data = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (c) => (data += c));
    process.stdin.on("end", () => resolve(data));
  });
}

// CPU time (user + system, all of node's threads) since `start`, in ms: robust to a loaded machine
function cpuMs(start) {
  const u = process.cpuUsage(start);
  return (u.user + u.system) / 1000;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

(async () => {
  const input = JSON.parse(await readStdin());
  const conn = d.create_conn(input.schema || {});
  const t0 = process.hrtime.bigint();
  for (const tx of input.txs || []) d.transact(conn, tx);
  const txMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const db = d.db(conn);
  const results = [];
  for (const q of input.queries || []) {
    try {
      const runs = [];
      const cpu = [];
      let value;
      for (let i = 0; i < (q.repeat || 1); i++) {
        const c = process.cpuUsage();
        const s = process.hrtime.bigint();
        value = d.q(q.query, db, ...(q.inputs || []));
        runs.push(Number(process.hrtime.bigint() - s) / 1e6);
        cpu.push(cpuMs(c));
      }
      results.push({ value: value === undefined ? null : value, ms: median(runs), cpu_ms: median(cpu) });
    } catch (e) {
      results.push({ error: String(e && e.message ? e.message : e) });
    }
  }
  // pulls: pull_many over "eids"; with "single" a d.pull of eids[0]; "repeat" times them like queries
  const pulls = [];
  for (const p of input.pulls || []) {
    try {
      const runs = [];
      const cpu = [];
      let value;
      for (let i = 0; i < (p.repeat || 1); i++) {
        const c = process.cpuUsage();
        const s = process.hrtime.bigint();
        value = p.single ? [d.pull(db, p.pattern, p.eids[0])] : d.pull_many(db, p.pattern, p.eids);
        runs.push(Number(process.hrtime.bigint() - s) / 1e6);
        cpu.push(cpuMs(c));
      }
      pulls.push({ value: value.map((x) => (x === undefined ? null : x)), ms: median(runs), cpu_ms: median(cpu) });
    } catch (e) {
      pulls.push({ error: String(e && e.message ? e.message : e) });
    }
  }
  process.stdout.write(JSON.stringify({ tx_ms: txMs, results, pulls }));
})();

"""secretsync's benchmark harness (run it with bench/run).

For each scenario size (secrets N, target accounts A, added latency L) it seeds a fresh Vault
mount (the Vault API emulator) with N secrets in folders of ten, and syncs them into A fresh AWS
accounts (moto) — once with secretsync, once with the naive boto3 + hvac baseline
(bench/baselines/naive_sync.py) into other fresh accounts — through the testbed's fault proxies,
which add L ms to every call and count calls by operation. Each tool runs four cases in order:

  first    the first sync into empty accounts
  noop     the same again: nothing changed
  changed  1% of the secrets changed in Vault
  dryrun   another 1% changed, planned without writing

and is measured for wall time, peak RSS (wait4) and API calls by operation. The floor is what
the case strictly needs: Vault one LIST per folder and one read per secret (Vault has no batch
read); per account one AssumeRole, ceil(E/100) ListSecrets and ceil(E/20) BatchGetSecretValue
for the E secrets already there, one write per changed secret; and time
calls x L / concurrency, with writes paced at Secrets Manager's 50/s per account.

Results go to target/bench/results.json and are printed as Markdown tables.
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYNC_PARALLEL = 4      # pipeline.sync.parallel default: accounts synced at once
LIST_CONCURRENCY = 16  # vault list_concurrency default


def testbed_env():
    env = {}
    for line in (ROOT / "target/testbed/env").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env


def http(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Vault-Token", token)
    with urllib.request.urlopen(req, timeout=60) as resp:
        text = resp.read()
        return json.loads(text) if text else {}


class Proxy:
    """A testbed fault proxy: latency rules and call counts."""

    def __init__(self, url):
        self.url = url.rstrip("/")
        self.rule = None

    def latency(self, ms):
        if self.rule is not None:
            http("DELETE", f"{self.url}/__fault/rules/{self.rule}")
            self.rule = None
        if ms:
            self.rule = http("POST", f"{self.url}/__fault/rules", {"fault": {"latency_ms": ms}})["id"]

    def reset(self):
        http("POST", f"{self.url}/__fault/counts/reset", {})

    def counts(self):
        out = {}
        for c in http("GET", f"{self.url}/__fault/counts")["counts"]:
            out[c["operation"]] = out.get(c["operation"], 0) + c["requests"]
        return out


def seed_vault(env, mount, n, version):
    """N secrets, ten per folder (`app07/svc3/s0731`), under a fresh KV v2 mount."""
    addr, token = env["SECRETSYNC_TEST_VAULT_ADDR"], env["SECRETSYNC_TEST_VAULT_TOKEN"]
    if version == 1:
        http("POST", f"{addr}/v1/sys/mounts/{mount}", {"type": "kv", "options": {"version": "2"}}, token)
    for i in range(n):
        write_secret(env, mount, i, version)


def secret_path(i):
    return f"app{i // 100:02d}/svc{(i // 10) % 10}/s{i:05d}"


def write_secret(env, mount, i, version):
    addr, token = env["SECRETSYNC_TEST_VAULT_ADDR"], env["SECRETSYNC_TEST_VAULT_TOKEN"]
    body = {"data": {"user": f"u{i}", "password": f"p{i}-v{version}", "port": 5432}}
    http("POST", f"{addr}/v1/{mount}/data/{secret_path(i)}", body, token)


def folders(n):
    leaf = {secret_path(i).rsplit("/", 1)[0] for i in range(n)}
    apps = {f.split("/")[0] for f in leaf}
    return len(leaf) + len(apps) + 1


def floor(case, n, accounts, latency_ms):
    """(calls, writes, seconds) the case strictly needs."""
    changed = math.ceil(n / 100)
    existing = 0 if case == "first" else n
    writes = {"first": n, "noop": 0, "changed": changed, "dryrun": 0}[case] * accounts
    vault_calls = folders(n) + n
    per_account = 1 + max(1, math.ceil(existing / 100)) + math.ceil(existing / 20)
    calls = vault_calls + accounts * per_account + writes + 1  # + GetCallerIdentity
    seconds = latency_ms / 1000 * (vault_calls / LIST_CONCURRENCY + accounts * per_account / SYNC_PARALLEL)
    # Writes: one at a time per account, and Secrets Manager allows 50/s per account after a
    # burst of 50; SYNC_PARALLEL accounts at once.
    per_account_writes = writes / accounts if accounts else 0
    paced = max(0.0, per_account_writes - 50) / 50
    write_seconds = max(paced, latency_ms / 1000 * per_account_writes) * math.ceil(accounts / SYNC_PARALLEL)
    return calls, writes, seconds + write_seconds


def run_measured(cmd, env, cwd):
    """Runs `cmd`: (seconds, peak RSS in MB, exit code, stdout, stderr)."""
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss / 1024, proc.returncode, out_path.read_text(), err_path.read_text()


WRITES = {"CreateSecret", "PutSecretValue", "UpdateSecret", "TagResource", "UntagResource", "DeleteSecret"}


def scenario(env, binary, n, accounts, latency_ms, tools, workdir):
    aws, vault = Proxy(env["SECRETSYNC_TEST_AWS_PROXY"]), Proxy(env["SECRETSYNC_TEST_VAULT_PROXY"])
    mount = f"bench{random.randrange(10**9)}"
    seed_vault(env, mount, n, 1)
    results = []
    base_env = dict(os.environ)
    for key in list(base_env):
        if key.startswith(("AWS_", "VAULT_", "SECRETSYNC_")):
            del base_env[key]
    base_env.update({
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": env["SECRETSYNC_TEST_AWS_PROXY"], "AWS_EC2_METADATA_DISABLED": "true",
        "VAULT_TOKEN": env["SECRETSYNC_TEST_VAULT_TOKEN"], "SECRETSYNC_NO_PROGRESS": "true",
    })
    version = 1
    for tool in tools:
        ids = [f"{random.randrange(10**11, 10**12)}" for _ in range(accounts)]
        if tool == "secretsync":
            targets = "".join(
                f"  T{k:03d}: {{ account_id: \"{a}\", imports: [vault] }}\n" for k, a in enumerate(ids)
            )
            (workdir / "pipeline.yaml").write_text(
                f"vault: {{ address: \"{env['SECRETSYNC_TEST_VAULT_PROXY']}\" }}\n"
                f"sources:\n  vault: {{ vault: {{ mount: {mount} }} }}\n"
                f"targets:\n{targets}"
            )
        for case in ["first", "noop", "changed", "dryrun"]:
            if case in ("changed", "dryrun"):
                version += 1
                for i in random.Random(version).sample(range(n), math.ceil(n / 100)):
                    write_secret(env, mount, i, version)
            aws.latency(latency_ms)
            vault.latency(latency_ms)
            aws.reset()
            vault.reset()
            if tool == "secretsync":
                cmd = [binary, "pipeline", "-c", "pipeline.yaml", "-o", "json"]
                if case == "dryrun":
                    cmd.append("--dry-run")
            else:
                cmd = [sys.executable, str(ROOT / "bench/baselines/naive_sync.py"),
                       env["SECRETSYNC_TEST_VAULT_PROXY"], mount, *ids]
                if case == "dryrun":
                    cmd.append("--dry-run")
            seconds, rss, code, out, err = run_measured(cmd, base_env, workdir)
            aws.latency(0)
            vault.latency(0)
            calls = {**aws.counts(), **{f"vault {k}": v for k, v in vault.counts().items()}}
            total = sum(calls.values())
            writes = sum(v for k, v in calls.items() if k in WRITES)
            floor_calls, floor_writes, floor_seconds = floor(case, n, accounts, latency_ms)
            # secretsync exits 1 for pending changes only with --exit-code, which is not used.
            ok = code == 0
            results.append({
                "tool": tool, "secrets": n, "accounts": accounts, "latency_ms": latency_ms, "case": case,
                "seconds": round(seconds, 3), "peak_rss_mb": round(rss, 1), "exit_code": code, "ok": ok,
                "calls": total, "writes": writes, "calls_by_operation": dict(sorted(calls.items())),
                "floor_calls": floor_calls, "floor_writes": floor_writes,
                "floor_seconds": round(floor_seconds, 3),
                "error": "" if ok else (err.strip().splitlines() or [""])[-1][:300],
            })
            status = "ok" if ok else f"FAILED ({code})"
            print(f"  {tool:10} {case:8} {seconds:7.2f} s  {total:6} calls  {writes:6} writes  {rss:6.1f} MB  {status}",
                  file=sys.stderr)
    return results


def table(results):
    lines = [
        "| N × A, latency | case | tool | wall s | floor s | × floor | calls | floor calls | writes | peak RSS MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        # Without added latency the floor is ~0 and a ratio says nothing.
        ratio = f"{r['seconds'] / r['floor_seconds']:.2f}" if r["latency_ms"] and r["floor_seconds"] > 0 else "—"
        lines.append(
            f"| {r['secrets']} × {r['accounts']}, {r['latency_ms']} ms | {r['case']} | {r['tool']} | {r['seconds']:.2f} "
            f"| {r['floor_seconds']:.2f} | {ratio} | {r['calls']} | {r['floor_calls']} | {r['writes']} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--sizes", default="100x1x0",
                        help="comma-separated NxAxL: secrets x accounts x latency ms (e.g. 1000x10x20)")
    parser.add_argument("--tools", default="secretsync,naive")
    args = parser.parse_args()
    env = testbed_env()
    workdir = ROOT / "target/bench/work"
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes.split(","):
        n, accounts, latency = (int(x) for x in size.split("x"))
        print(f"{n} secrets × {accounts} accounts, {latency} ms per call", file=sys.stderr)
        results += scenario(env, args.binary, n, accounts, latency, args.tools.split(","), workdir)
    out = ROOT / "target/bench/results.json"
    out.write_text(json.dumps(results, indent=2))
    print(table(results))
    failed = [r for r in results if not r["ok"]]
    if failed:
        for r in failed:
            print(f"FAILED: {r['tool']} {r['case']} {r['secrets']}x{r['accounts']}: {r['error']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""secretsync's benchmark harness (run it with bench/run).

For each scenario size (secrets N, target accounts A, added latency L) it seeds a fresh Vault
mount (OpenBao, the testbed's Vault) with N secrets five folders deep, ten per folder, and
syncs them into A fresh AWS accounts (moto) with each tool — secretsync, the naive boto3 + hvac baseline
(bench/baselines/naive_sync.py) and teller (bench/baselines/teller_sync.py), each into its own
fresh accounts — through the testbed's fault proxies, which add L ms to every call and count
calls by operation. Each tool runs these cases in order (--cases picks some):

  first    the first sync into empty accounts
  noop     the same again: nothing changed
  changed  1% of the secrets changed in Vault
  dryrun   another 1% changed, planned without writing

and is measured for wall time, peak RSS (bench/peak_rss.py: the largest process of the tool's process tree, never the harness's own memory)
and API calls by operation. A case a tool cannot do is reported as such (teller has no dry run). The floor is what
the case strictly needs: Vault one LIST per folder and one read per secret (Vault has no batch
read); per account one AssumeRole, ceil(E/100) ListSecrets and ceil(E/20) BatchGetSecretValue
for the E secrets already there, one write per changed secret; and time
calls x L / concurrency, with writes paced at Secrets Manager's 50/s per account. What the
proxy really adds per call at L is measured before each size and recorded in its rows
(proxy_added_ms), so a reader can see how close the testbed comes to the floor's assumption.

AWS is moto with its Secrets Manager lookups indexed (scripts/moto_indexed.py; same answers, no
per-lookup scan of every secret) unless bench/run --moto stock; each result row says which.

Results go to target/bench/results.json (or --out) and are printed as Markdown tables. The run
fails if a tool fails, or if secretsync misses a call-count target (a no-op re-sync must write
nothing and stay within the floor + 1 call per account); times are reported, never asserted.
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYNC_PARALLEL = 4      # pipeline.sync.parallel default: accounts synced at once
LIST_CONCURRENCY = 16  # vault list_concurrency default
WRITE_CONCURRENCY = 8  # writes in flight per Secrets Manager account (paced at 50/s)
READ_QUOTA = 100       # BatchGetSecretValue calls per second per account (AWS quota, not adjustable)
CASES = ("first", "noop", "changed", "dryrun")
TELLER = ""  # the teller binary, from --teller
SHARD = ""  # I/N: secretsync syncs shard I of N only (`pipeline --shard`), from --shard
STS_THROTTLE = 0.0  # probability of an injected Throttling answer to each AssumeRole, from --sts-throttle


def testbed_env():
    env = {}
    for line in (ROOT / "target/testbed/env").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env


def moto_cpu_seconds():
    """CPU time (user + system) moto has used so far; None without /proc. moto runs its Python
    one thread at a time, so the CPU time it spends answering a run is a lower bound on that
    run's wall time on this testbed, whatever the client does."""
    try:
        pid = (ROOT / "target/testbed/moto.pid").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


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


def added_latency_ms(proxy, latency_ms, samples=50):
    """What the proxy really adds per call when asked for `latency_ms` (reported with each row;
    the floor uses `latency_ms`): the mean of `samples` Vault health checks over one kept-alive
    connection with the latency rule, minus the same without it."""
    url = urllib.parse.urlsplit(proxy.url)

    def mean_ms():
        conn = HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            conn.request("GET", "/v1/sys/health")
            conn.getresponse().read()  # connect before timing
            started = time.perf_counter()
            for _ in range(samples):
                conn.request("GET", "/v1/sys/health")
                conn.getresponse().read()
            return (time.perf_counter() - started) * 1000 / samples
        finally:
            conn.close()

    base = mean_ms()
    proxy.latency(latency_ms)
    try:
        delayed = mean_ms()
    finally:
        proxy.latency(0)
    return round(delayed - base, 2)


def seed_vault(env, mount, n, version):
    """N secrets, ten per folder (`app07/svc3/s0731`), under a fresh KV v2 mount."""
    addr, token = env["SECRETSYNC_TEST_VAULT_ADDR"], env["SECRETSYNC_TEST_VAULT_TOKEN"]
    if version == 1:
        http("POST", f"{addr}/v1/sys/mounts/{mount}", {"type": "kv", "options": {"version": "2"}}, token)
    for i in range(n):
        write_secret(env, mount, i, version)


def secret_path(i):
    """Five levels deep, ten secrets per folder: `org/team01/app3/svc7/s01371`."""
    return f"org/team{i // 1000:02d}/app{(i // 100) % 10}/svc{(i // 10) % 10}/s{i:05d}"


def write_secret(env, mount, i, version):
    addr, token = env["SECRETSYNC_TEST_VAULT_ADDR"], env["SECRETSYNC_TEST_VAULT_TOKEN"]
    # String values only: teller's providers read a secret as a map of strings.
    body = {"data": {"user": f"u{i}", "password": f"p{i}-v{version}", "port": "5432"}}
    http("POST", f"{addr}/v1/{mount}/data/{secret_path(i)}", body, token)


def folders(n):
    """Folders a full listing LISTs: the mount's root and every folder under it."""
    found = set()
    for i in range(n):
        parts = secret_path(i).split("/")[:-1]
        found.update("/".join(parts[:k]) for k in range(1, len(parts) + 1))
    return len(found) + 1


def floor(case, n, accounts, latency_ms, existing, aws_ms=None, vault_ms=None):
    """(calls, writes, seconds) the case strictly needs, with `existing` secrets already in each
    account. `aws_ms` / `vault_ms`, when given, replace `latency_ms` as the time one call takes
    (the *service floor*: the proxy's measured latency plus moto's own CPU time per call)."""
    aws_ms = latency_ms if aws_ms is None else aws_ms
    vault_ms = latency_ms if vault_ms is None else vault_ms
    changed = math.ceil(n / 100)
    writes = {"first": n - existing, "noop": 0, "changed": changed, "dryrun": 0}[case] * accounts
    vault_calls = folders(n) + n
    per_account = 1 + max(1, math.ceil(existing / 100)) + math.ceil(existing / 20)
    calls = vault_calls + accounts * per_account + writes + 1  # + GetCallerIdentity
    # Reads: the added latency over the configured concurrency, and no faster than AWS's read
    # quota allows (BatchGetSecretValue 100 calls/s per account after a burst of 100;
    # ListSecrets has its own 100/s and overlaps), with SYNC_PARALLEL accounts at once.
    vault_seconds = vault_ms / 1000 * vault_calls / LIST_CONCURRENCY
    latency_bound = aws_ms / 1000 * accounts * per_account / SYNC_PARALLEL
    batch_reads = math.ceil(existing / 20)
    quota_bound = math.ceil(accounts / SYNC_PARALLEL) * max(0, batch_reads - READ_QUOTA) / READ_QUOTA
    seconds = vault_seconds + max(latency_bound, quota_bound)
    # Writes: one at a time per account, and Secrets Manager allows 50/s per account after a
    # burst of 50; SYNC_PARALLEL accounts at once.
    per_account_writes = writes / accounts if accounts else 0
    paced = max(0.0, per_account_writes - 50) / 50
    unpaced = aws_ms / 1000 * per_account_writes / WRITE_CONCURRENCY
    write_seconds = max(paced, unpaced) * math.ceil(accounts / SYNC_PARALLEL)
    return calls, writes, seconds + write_seconds


def run_measured(cmd, env, cwd):
    """Runs `cmd`: (seconds, peak RSS in MB, exit code, stdout, stderr)."""
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    rss_path = cwd / "peak_rss_kb.txt"
    rss_path.unlink(missing_ok=True)
    # The command's own peak, not the harness's: see bench/peak_rss.py.
    wrapped = [sys.executable, str(ROOT / "bench/peak_rss.py"), str(rss_path), *cmd]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(wrapped, env=env, cwd=cwd, stdout=out, stderr=err)
        proc.wait()
        elapsed = time.monotonic() - started
    peak_kb = int(rss_path.read_text()) if rss_path.exists() else 0
    return elapsed, peak_kb / 1024, proc.returncode, out_path.read_text(), err_path.read_text()


WRITES = {"CreateSecret", "PutSecretValue", "UpdateSecret", "TagResource", "UntagResource", "DeleteSecret"}


def clean_env(env):
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
    return base_env


def teller_setup(env, workdir, mount, n, ids):
    """What a teller user writes by hand, done before the measured runs (not counted): an IAM
    access key in every account (teller's AWS provider takes static keys, no role to assume),
    a .teller.yml with the Vault provider and one Secrets Manager provider per account, and the
    list of secret paths (teller cannot list Vault). Returns (config, paths file, providers)."""
    import boto3  # the naive baseline's dependency, installed by bench/run

    moto = env["SECRETSYNC_TEST_AWS_ENDPOINT"]
    common = {"endpoint_url": moto, "region_name": "us-east-1"}
    sts = boto3.client("sts", aws_access_key_id="bench", aws_secret_access_key="bench", **common)
    lines = [
        "providers:",
        "  vault:",
        "    kind: hashicorp",
        "    options:",
        f"      address: {env['SECRETSYNC_TEST_VAULT_PROXY']}",
        f"      token: {env['SECRETSYNC_TEST_VAULT_TOKEN']}",
        "    maps:",
        "      - id: s",
        f"        path: '{mount}/{{{{ get_env(name=\"SECRET_PATH\") }}}}'",
    ]
    providers = []
    for k, account in enumerate(ids):
        role = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="bench",
        )["Credentials"]
        iam = boto3.client("iam", aws_access_key_id=role["AccessKeyId"],
                           aws_secret_access_key=role["SecretAccessKey"],
                           aws_session_token=role["SessionToken"], **common)
        iam.create_user(UserName="teller")
        key = iam.create_access_key(UserName="teller")["AccessKey"]
        name = f"aws_{k:03d}"
        providers.append(name)
        lines += [
            f"  {name}:",
            "    kind: aws_secretsmanager",
            "    options:",
            "      region: us-east-1",
            f"      access_key_id: {key['AccessKeyId']}",
            f"      secret_access_key: {key['SecretAccessKey']}",
            f"      endpoint_url: {env['SECRETSYNC_TEST_AWS_PROXY']}",
            "    maps:",
            "      - id: s",
            "        path: '{{ get_env(name=\"SECRET_PATH\") }}'",
        ]
    config, paths = workdir / "teller.yml", workdir / "teller-paths.txt"
    config.write_text("\n".join(lines) + "\n")
    paths.write_text("".join(secret_path(i) + "\n" for i in range(n)))
    return config, paths, providers


# Cases a baseline cannot do, and why (reported instead of a measurement).
NOT_POSSIBLE = {
    ("teller", "dryrun"): "teller has no dry run",
}


def command(tool, case, binary, env, mount, ids, teller):
    if tool == "secretsync":
        cmd = [binary, "pipeline", "-c", "pipeline.yaml", "-o", "json"]
        if SHARD:
            cmd += ["--shard", SHARD]
        return cmd + ["--dry-run"] if case == "dryrun" else cmd
    if tool == "naive":
        cmd = [sys.executable, str(ROOT / "bench/baselines/naive_sync.py"),
               env["SECRETSYNC_TEST_VAULT_PROXY"], mount, *ids]
        return cmd + ["--dry-run"] if case == "dryrun" else cmd
    config, paths, providers = teller
    return [sys.executable, str(ROOT / "bench/baselines/teller_sync.py"), str(TELLER), str(config),
            str(paths), *providers]


def scenario(env, binary, n, accounts, latency_ms, tools, cases, workdir):
    aws, vault = Proxy(env["SECRETSYNC_TEST_AWS_PROXY"]), Proxy(env["SECRETSYNC_TEST_VAULT_PROXY"])
    mount = f"bench{random.randrange(10**9)}"
    seed_vault(env, mount, n, 1)
    added_ms = added_latency_ms(vault, latency_ms) if latency_ms else 0.0
    if latency_ms:
        print(f"  the fault proxy adds {added_ms:.2f} ms per call when asked for {latency_ms} ms", file=sys.stderr)
    results = []
    base_env = clean_env(env)
    version = 1
    for tool in tools:
        ids = [f"{random.randrange(10**11, 10**12)}" for _ in range(accounts)]
        teller = teller_setup(env, workdir, mount, n, ids) if tool == "teller" else None
        if tool == "secretsync":
            targets = "".join(
                f"  T{k:03d}: {{ account_id: \"{a}\", imports: [vault] }}\n" for k, a in enumerate(ids)
            )
            (workdir / "pipeline.yaml").write_text(
                f"vault: {{ address: \"{env['SECRETSYNC_TEST_VAULT_PROXY']}\" }}\n"
                f"sources:\n  vault: {{ vault: {{ mount: {mount} }} }}\n"
                f"targets:\n{targets}"
            )
        existing = 0
        for case in cases:
            if case in ("changed", "dryrun"):
                version += 1
                for i in random.Random(version).sample(range(n), math.ceil(n / 100)):
                    write_secret(env, mount, i, version)
            floor_calls, floor_writes, floor_seconds = floor(case, n, accounts, latency_ms, existing)
            row = {
                "tool": tool, "secrets": n, "accounts": accounts, "latency_ms": latency_ms, "case": case,
                "existing": existing, "floor_calls": floor_calls, "floor_writes": floor_writes,
                "floor_seconds": round(floor_seconds, 3), "proxy_added_ms": added_ms,
            }
            why_not = NOT_POSSIBLE.get((tool, case))
            if why_not:
                results.append({**row, "ok": True, "not_possible": why_not})
                print(f"  {tool:10} {case:8} not possible: {why_not}", file=sys.stderr)
                continue
            # The proxy applies the first rule that fires, so the throttle goes in before the
            # latency rule (a throttled answer comes back without the added latency).
            throttle_rule = None
            if STS_THROTTLE and tool == "secretsync":
                aws.latency(0)
                throttle_rule = http("POST", f"{aws.url}/__fault/rules", {
                    "operation": "AssumeRole",
                    "fault": {"status": 400, "code": "Throttling", "message": "Rate exceeded"},
                    "probability": STS_THROTTLE, "seed": 11,
                })["id"]
            aws.latency(latency_ms)
            vault.latency(latency_ms)
            aws.reset()
            vault.reset()
            cmd = command(tool, case, binary, env, mount, ids, teller)
            moto_before = moto_cpu_seconds()
            seconds, rss, code, out, err = run_measured(cmd, base_env, workdir)
            moto_after = moto_cpu_seconds()
            sts_throttled = None
            if throttle_rule is not None:
                sts_throttled = http("GET", f"{aws.url}/__fault/rules/{throttle_rule}")["fired"]
                http("DELETE", f"{aws.url}/__fault/rules/{throttle_rule}")
            moto_cpu = round(moto_after - moto_before, 2) if moto_before is not None and moto_after is not None else None
            aws.latency(0)
            vault.latency(0)
            calls = {**aws.counts(), **{f"vault {k}": v for k, v in vault.counts().items()}}
            aws_calls_of = lambda c: sum(v for k, v in c.items() if not k.startswith("vault "))  # noqa: E731
            total = sum(calls.values())
            writes = sum(v for k, v in calls.items() if k in WRITES)
            aws_calls = sum(v for k, v in calls.items() if not k.startswith("vault "))
            # secretsync exits 1 for pending changes only with --exit-code, which is not used.
            ok = code == 0
            synced = accounts
            if SHARD and tool == "secretsync" and ok:
                # A shard syncs some of the accounts: its floor is theirs.
                synced = sum(1 for t in json.loads(out)["targets"] if t.get("synced"))
                floor_calls, floor_writes, floor_seconds = floor(case, n, synced, latency_ms, existing)
                row.update(floor_calls=floor_calls, floor_writes=floor_writes,
                           floor_seconds=round(floor_seconds, 3), shard=SHARD)
            # moto is one Python process: its CPU time per call is service time every call waits
            # for on top of the proxy's latency, and its CPU time as a whole is time no run can
            # beat (it serves one call at a time). The service floor is the larger of the two,
            # which tells secretsync's own overhead apart from the emulator's.
            service_floor = None
            if moto_cpu is not None and aws_calls_of(calls):
                aws_ms = added_ms + moto_cpu * 1000 / aws_calls_of(calls)
                spread = floor(case, n, synced, latency_ms, existing, aws_ms, added_ms)[2]
                service_floor = round(max(spread, moto_cpu), 3)
            if ok and case != "dryrun":
                existing = n
            results.append({
                **row, "seconds": round(seconds, 3), "moto_cpu_seconds": moto_cpu, "peak_rss_mb": round(rss, 1),
                "accounts_synced": synced, "service_floor_seconds": service_floor,
                "sts_calls": calls.get("AssumeRole", 0) + calls.get("GetCallerIdentity", 0),
                "sts_throttled": sts_throttled,
                "exit_code": code,
                "ok": ok, "calls": total, "aws_calls": aws_calls, "writes": writes,
                "calls_by_operation": dict(sorted(calls.items())),
                "error": "" if ok else (err.strip().splitlines() or [""])[-1][:300],
            })
            status = "ok" if ok else f"FAILED ({code})"
            sts = f"  sts {calls.get('AssumeRole', 0)} AssumeRole" + (
                f" ({sts_throttled} throttled)" if sts_throttled is not None else "")
            print(f"  {tool:10} {case:8} {seconds:7.2f} s  {total:6} calls  {writes:6} writes  {rss:6.1f} MB  {status}{sts}",
                  file=sys.stderr)
    return results


def table(results):
    lines = [
        "| N × A, latency | case | tool | wall s | floor s | × floor | moto CPU s | service floor s | × service floor "
        "| calls | AWS calls | floor calls | writes | peak RSS MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        size = f"{r['secrets']} × {r['accounts']}, {r['latency_ms']} ms"
        if r.get("shard"):
            size += f", shard {r['shard']} ({r['accounts_synced']} accounts)"
        if "not_possible" in r:
            lines.append(f"| {size} | {r['case']} | {r['tool']} | not possible: {r['not_possible']} "
                         f"| {r['floor_seconds']:.2f} | | | | | | | {r['floor_calls']} | | |")
            continue
        service = r.get("service_floor_seconds")
        service_cells = (f"{service:.2f} | {r['seconds'] / service:.2f}" if service else " | ")
        # Without added latency (and below the read quota) the floor is 0 and a ratio says nothing.
        ratio = f"{r['seconds'] / r['floor_seconds']:.2f}" if r["floor_seconds"] > 0 else "—"
        lines.append(
            f"| {size} | {r['case']} | {r['tool']} | {r['seconds']:.2f} | {r['floor_seconds']:.2f} | {ratio} "
            f"| {'' if r.get('moto_cpu_seconds') is None else format(r['moto_cpu_seconds'], '.2f')} "
            f"| {service_cells} "
            f"| {r['calls']} | {r['aws_calls']} | {r['floor_calls']} | {r['writes']} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def versus(results):
    """secretsync against each baseline, same size and case: how many times faster, and how many
    times fewer calls (all calls, and AWS calls only)."""
    ours = {(r["secrets"], r["accounts"], r["latency_ms"], r["case"]): r
            for r in results if r["tool"] == "secretsync" and "seconds" in r}
    lines = [
        "| N × A, latency | case | baseline | × faster | × fewer calls | × fewer AWS calls |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in results:
        key = (r["secrets"], r["accounts"], r["latency_ms"], r["case"])
        if r["tool"] == "secretsync" or "seconds" not in r or key not in ours:
            continue
        s = ours[key]
        lines.append(
            f"| {r['secrets']} × {r['accounts']}, {r['latency_ms']} ms | {r['case']} | {r['tool']} "
            f"| {r['seconds'] / s['seconds']:.1f} | {r['calls'] / s['calls']:.1f} "
            f"| {r['aws_calls'] / s['aws_calls']:.1f} |"
        )
    return "\n".join(lines)


def missed_targets(results):
    """The call-count targets, which do not depend on the machine's speed: a no-op re-sync by
    secretsync makes no write and at most one call per account above the floor."""
    missed = []
    for r in results:
        if r["tool"] != "secretsync" or r["case"] != "noop" or "calls" not in r:
            continue
        size = f"{r['secrets']}x{r['accounts']}x{r['latency_ms']}"
        if r["writes"]:
            missed.append(f"secretsync noop {size}: {r['writes']} writes (target: none)")
        if r["calls"] > r["floor_calls"] + r.get("accounts_synced", r["accounts"]):
            missed.append(f"secretsync noop {size}: {r['calls']} calls, more than the floor "
                          f"{r['floor_calls']} + 1 per account")
    return missed


def main():
    global TELLER, SHARD, STS_THROTTLE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--sizes", default="100x1x0",
                        help="comma-separated NxAxL: secrets x accounts x latency ms (e.g. 1000x10x20)")
    parser.add_argument("--tools", default="secretsync,naive")
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated, run in this order: " + ", ".join(CASES))
    parser.add_argument("--teller", default="", help="the teller binary (bench/run installs it)")
    parser.add_argument("--out", default=str(ROOT / "target/bench/results.json"))
    parser.add_argument("--shard", default="", help="I/N: secretsync syncs shard I of N (pipeline --shard)")
    parser.add_argument("--sts-throttle", type=float, default=0.0,
                        help="probability (0-1) of an injected Throttling answer to each AssumeRole")
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; the cases are {', '.join(CASES)}")
    tools = args.tools.split(",")
    if "teller" in tools and not args.teller:
        parser.error("--tools teller needs --teller PATH")
    TELLER = args.teller
    SHARD = args.shard
    STS_THROTTLE = args.sts_throttle
    env = testbed_env()
    workdir = ROOT / "target/bench/work"
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes.split(","):
        n, accounts, latency = (int(x) for x in size.split("x"))
        print(f"{n} secrets × {accounts} accounts, {latency} ms per call", file=sys.stderr)
        results += scenario(env, args.binary, n, accounts, latency, tools, cases, workdir)
    moto_kind = env.get("SECRETSYNC_TEST_MOTO_KIND", "stock")
    for r in results:
        r["moto"] = moto_kind
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"moto: {moto_kind}" + (" (scripts/moto_indexed.py: moto with Secrets Manager's linear scans indexed)"
                                  if moto_kind == "indexed" else " (moto_server as released)"))
    print()
    print(table(results))
    if any(r["tool"] != "secretsync" for r in results):
        print()
        print(versus(results))
    failed = [f"{r['tool']} {r['case']} {r['secrets']}x{r['accounts']}: {r['error']}" for r in results if not r["ok"]]
    failed += missed_targets(results)
    if failed:
        for problem in failed:
            print(f"FAILED: {problem}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

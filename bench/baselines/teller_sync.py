"""The teller baseline: `teller copy` from Vault to AWS Secrets Manager, the way teller 2 can do
this job. A teller map is one secret path and teller cannot list a Vault tree, so the secret
paths come from a file (a teller user writes them into .teller.yml by hand), and `teller copy`
copies one map per process, to every account at once (`--to aws_000/s,aws_001/s,...`). The
config (written by bench/harness.py) takes the path from the environment through teller's
template (`{{ get_env(name="SECRET_PATH") }}`), so one config serves every secret.

teller has no dry run and never deletes; bench/harness.py reports those cases as not possible.

Usage: teller_sync.py TELLER CONFIG PATHS_FILE PROVIDER...   (the config's Secrets Manager providers)
Prints a JSON summary: secrets copied and teller processes run.
"""

import json
import os
import subprocess
import sys


def main():
    teller, config, paths_file, *providers = sys.argv[1:]
    targets = ",".join(f"{name}/s" for name in providers)
    with open(paths_file, encoding="utf-8") as f:
        paths = [p for p in f.read().splitlines() if p]
    env = dict(os.environ)
    for path in paths:
        env["SECRET_PATH"] = path
        done = subprocess.run(
            [teller, "-c", config, "copy", "--from", "vault/s", "--to", targets],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        )
        if done.returncode != 0:
            # teller prints the failing map; never a value (the bench's values are not secret).
            sys.exit(f"teller copy failed for {path}: {done.stderr.strip()[-500:]}")
    print(json.dumps({"secrets": len(paths), "processes": len(paths), "accounts": len(providers)}))


if __name__ == "__main__":
    main()

"""Checks scripts/moto_indexed.py against moto's own code: same answers on the same data.

1. Random operation sequences (set, overwrite, pop, del, lookups by name, full ARN and partial
   ARN, including a secret named like another's ARN) on moto's SecretsStore and on
   IndexedSecretsStore side by side; every answer and the dict's order must agree.
2. A Secrets Manager backend with tagged, described and scheduled-for-deletion secrets: moto's
   list_secrets and the indexed one return the same pages and tokens for several filters, page
   sizes and include_planned_deletion, followed to the end.

Exits non-zero on the first difference, naming the step. CI runs it (.ci/run).
Usage: python scripts/moto_indexed_check.py [--seed N] [--rounds N]
"""

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moto_indexed  # noqa: E402  (the module under test, beside this file)

ACCOUNT = "123456789012"
REGION = "us-east-1"


class Secret:
    """Just what SecretsStore looks at: an ARN and a name."""

    def __init__(self, name, arn):
        self.name = name
        self.arn = arn

    def __repr__(self):
        return f"Secret({self.name!r}, {self.arn!r})"


def arn_of(name, suffix):
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-{suffix}"


def fail(step, what, stock, indexed):
    sys.exit(f"moto_indexed_check: {step}: {what} differs: moto {stock!r}, indexed {indexed!r}")


def answer(call):
    """What a store call returns, or the exception type it raises."""
    try:
        result = call()
    except KeyError:
        return "KeyError"
    return id(result) if isinstance(result, Secret) else result


def check_stores(rng, rounds):
    names = [f"app/s{i}" for i in range(12)]
    for round_ in range(rounds):
        stock, indexed = moto_indexed.STOCK_STORE(), moto_indexed.IndexedSecretsStore()
        made = []
        for step in range(60):
            op = rng.choice(["set", "set", "set_arn", "set_odd", "pop", "del", "look", "look", "look"])
            where = f"round {round_} step {step} ({op})"
            if op == "set":  # as create_secret / _add_secret: keyed by name, maybe overwritten
                name = rng.choice(names)
                secret = Secret(name, arn_of(name, rng.choice(["AbCdEf", "XyZ123"])))
                stock[name] = secret
                indexed[name] = secret
                made.append(secret)
            elif op == "set_arn" and made:  # as a replica: keyed by its ARN
                source = rng.choice(made)
                secret = Secret(source.name, source.arn.replace(REGION, "eu-west-1"))
                stock[secret.arn] = secret
                indexed[secret.arn] = secret
                made.append(secret)
            elif op == "set_odd" and made:  # a secret whose name is another secret's ARN
                other = rng.choice(made)
                secret = Secret(other.arn, arn_of(other.arn, "Odd999"))
                stock[other.arn] = secret
                indexed[other.arn] = secret
                made.append(secret)
            elif op in ("pop", "del", "look"):
                candidates = names + [s.arn for s in made] + [s.name for s in made]
                candidates += [s.arn.rsplit("-", 1)[0] for s in made]  # partial ARNs
                key = rng.choice(candidates)
                if op == "pop":
                    a, b = stock.pop(key), indexed.pop(key)
                    if answer(lambda a=a: a) != answer(lambda b=b: b):
                        fail(where, f"pop({key!r})", a, b)
                elif op == "del":
                    a = answer(lambda: stock.__delitem__(key))
                    b = answer(lambda: indexed.__delitem__(key))
                    if a != b:
                        fail(where, f"del [{key!r}]", a, b)
                else:
                    for what, call in (("[]", "__getitem__"), ("in", "__contains__"), ("get", "get")):
                        a = answer(lambda c=call: getattr(stock, c)(key))
                        b = answer(lambda c=call: getattr(indexed, c)(key))
                        if a != b:
                            fail(where, f"{what} {key!r}", a, b)
            if list(stock.items()) != list(indexed.items()):
                fail(where, "contents", list(stock.items()), list(indexed.items()))


def check_list_secrets(rng):
    moto_indexed.install()
    backend = moto_indexed.models.SecretsManagerBackend(REGION, ACCOUNT)
    if not isinstance(backend.secrets, moto_indexed.IndexedSecretsStore):
        sys.exit("moto_indexed_check: install() did not replace moto's SecretsStore")
    for i in range(257):
        tags = [{"Key": "team", "Value": rng.choice(["a", "b"])}] if i % 3 else None
        backend.create_secret(
            name=f"{rng.choice(['app', 'db', 'ops'])}/secret-{i:03d}",
            secret_string=f"value-{i}",
            secret_binary=None,
            description="managed" if i % 5 == 0 else None,
            tags=tags,
            kms_key_id=None,
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
    for i in range(0, 257, 17):
        name = next(s.name for s in backend.secrets.values() if s.name.endswith(f"-{i:03d}"))
        backend.delete_secret(name, recovery_window_in_days=7, force_delete_without_recovery=False)
    filter_sets = [
        [],
        [{"Key": "name", "Values": ["db/"]}],
        [{"Key": "tag-key", "Values": ["team"]}],
        [{"Key": "tag-value", "Values": ["a"]}],
        [{"Key": "description", "Values": ["managed"]}],
        [{"Key": "all", "Values": ["secret-1"]}],
    ]
    for filters in filter_sets:
        for page_size in (1, 7, 20, 100, None):
            for include_deleted in (False, True):
                token, pages = None, 0
                while True:
                    args = (backend, filters, page_size, token, include_deleted)
                    stock = moto_indexed.STOCK_LIST_SECRETS(*args)
                    indexed = moto_indexed.list_secrets(*args)
                    where = f"list_secrets filters={filters} page={page_size} deleted={include_deleted} #{pages}"
                    if stock != indexed:
                        fail(where, "page", stock, indexed)
                    token, pages = stock[1], pages + 1
                    if token is None:
                        break


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    check_stores(rng, args.rounds)
    check_list_secrets(rng)
    print(f"moto_indexed_check: the indexed store and list_secrets agree with moto ({args.rounds} rounds, seed {args.seed})")


if __name__ == "__main__":
    main()

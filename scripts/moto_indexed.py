"""moto_server with Secrets Manager's linear scans replaced by an index (the benchmark's moto).

Why: moto 5.2.5 finds a secret by walking every secret in the account — `SecretsStore` compares
the id with each secret's ARN and name on every lookup, and a read looks up three times — and
`list_secrets` converts every secret to a response dict for every page, then keeps one page.
Real Secrets Manager does neither. With 10,000 secrets in an account that costs moto 60 ms of CPU
per BatchGetSecretValue and 100-180 ms per ListSecrets page, on one core, so at 10 ms of added
latency a benchmark measures moto instead of the client (docs/benchmarks.md, "moto CPU s").

This launcher changes nothing moto answers, only how fast it finds it:
- `IndexedSecretsStore` keeps the same dict (keyed as moto keys it) plus an index from each
  secret's ARN and name to the keys holding it, and answers every lookup exactly as moto's
  `SecretsStore` does, including its precedence (the first secret in insertion order whose ARN or
  name matches, then the partial-ARN fallback; `pop` follows moto's walk, which looks for each
  match's name in the secrets after it).
- `list_secrets` filters as moto does and builds response dicts for the requested page only.

`scripts/moto_indexed_check.py` checks both against moto's own code on the same data (CI runs it).
`scripts/testbed up --indexed-moto` starts this instead of moto_server; `bench/run` does that by
default (`bench/run --moto stock` measures stock moto). The tests use stock moto.

Usage: python scripts/moto_indexed.py [moto_server arguments, e.g. -H 127.0.0.1 -p 5000]
"""

import sys
from typing import Any

from moto.secretsmanager import models

STOCK_STORE = models.SecretsStore
STOCK_LIST_SECRETS = models.SecretsManagerBackend.list_secrets


class IndexedSecretsStore(models.SecretsStore):
    """moto's SecretsStore with O(1) lookups by ARN or name and the same answers."""

    def __init__(self) -> None:
        super().__init__()
        self._order: dict[str, int] = {}  # dict key -> when it was first inserted (dict order)
        self._holders: dict[str, dict[str, None]] = {}  # ARN or name -> dict keys holding it
        self._inserted = 0

    def _index(self, key: str, secret: Any) -> None:
        for ident in {secret.arn, secret.name}:
            self._holders.setdefault(ident, {})[key] = None

    def _unindex(self, key: str, secret: Any) -> None:
        for ident in {secret.arn, secret.name}:
            holders = self._holders.get(ident)
            if holders is not None:
                holders.pop(key, None)
                if not holders:
                    del self._holders[ident]

    def _matching_keys(self, ident: str) -> list[str]:
        """The dict keys whose secret has this ARN or name, in the dict's order."""
        return sorted(self._holders.get(ident, ()), key=self._order.__getitem__)

    def _first_match(self, ident: str) -> Any:
        keys = self._matching_keys(ident)
        return dict.__getitem__(self, keys[0]) if keys else None

    def __setitem__(self, key: str, value: Any) -> None:
        if dict.__contains__(self, key):
            self._unindex(key, dict.__getitem__(self, key))  # keeps its place, as a dict does
        else:
            self._order[key] = self._inserted
            self._inserted += 1
        dict.__setitem__(self, key, value)
        self._index(key, value)

    def __delitem__(self, key: str) -> None:
        self._unindex(key, dict.__getitem__(self, key))
        del self._order[key]
        dict.__delitem__(self, key)

    def __getitem__(self, key: str) -> Any:
        secret = self._first_match(key)
        if secret is not None:
            return secret
        return dict.__getitem__(self, models.get_secret_name_from_partial_arn(key))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return dict.__contains__(self, key)
        if self._first_match(key) is not None:
            return True
        return dict.__contains__(self, models.get_secret_name_from_partial_arn(key))

    def get(self, key: str) -> Any:  # type: ignore[override]
        secret = self._first_match(key)
        if secret is not None:
            return secret
        return dict.get(self, models.get_secret_name_from_partial_arn(key))

    def pop(self, key: str) -> Any:  # type: ignore[override]
        # moto's pop walks every secret in order and, at each match, replaces the id it looks
        # for with that secret's name; later secrets are compared with the new id.
        position = -1
        while True:
            later = [k for k in self._holders.get(key, ()) if self._order[k] > position]
            if not later:
                break
            found = min(later, key=self._order.__getitem__)
            position = self._order[found]
            key = dict.__getitem__(self, found).name
        name = models.get_secret_name_from_partial_arn(key)
        if not dict.__contains__(self, name):
            return None
        secret = dict.__getitem__(self, name)
        self.__delitem__(name)
        return secret

    def clear(self) -> None:
        dict.clear(self)
        self._order.clear()
        self._holders.clear()

    def _unsupported(self, *_args: Any, **_kwargs: Any) -> Any:
        raise NotImplementedError("IndexedSecretsStore: moto does not use this; add it with its index")

    popitem = setdefault = update = __ior__ = _unsupported  # type: ignore[assignment]


def list_secrets(
    self: Any,
    filters: list[dict[str, Any]],
    max_results: int = models.MAX_RESULTS_DEFAULT,
    next_token: str | None = None,
    include_planned_deletion: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """moto's list_secrets, building response dicts for the returned page only."""
    matching = []
    for secret in self.secrets.values():
        if hasattr(secret, "deleted_date"):
            if secret.deleted_date and not include_planned_deletion:
                continue
        if models._matches(secret, filters):  # noqa: SLF001 (moto's own filter)
            matching.append(secret)
    page, new_next_token = self._get_secret_values_page_and_next_token(matching, max_results, next_token)
    return [secret.to_dict() for secret in page], new_next_token


def install() -> None:
    """Patches moto in this process; call before any backend is created."""
    models.SecretsStore = IndexedSecretsStore
    models.SecretsManagerBackend.list_secrets = list_secrets


def main() -> None:
    install()
    from moto.server import main as moto_server

    moto_server(sys.argv[1:])


if __name__ == "__main__":
    main()

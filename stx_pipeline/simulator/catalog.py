"""The contract catalog: realistic mainnet-like contracts, their functions and argument shapes.

Popularity is Zipf-skewed (a handful of DEX / stacking contracts dominate real traffic), so
"top contracts" dashboards have a clear head and a long tail.
"""

from __future__ import annotations

from dataclasses import dataclass

from stx_pipeline.simulator import ids

# Strings meant to break naive HTML / JS / SQL / CSV handling downstream.
HOSTILE_CONTRACT_NAME = '<script>alert("x")</script>\'; DROP TABLE x; --'
HOSTILE_FUNCTION_NAME = "swap\"><img src=x onerror=alert('fn')>'; DROP TABLE transactions; --"

# Argument kinds understood by chain._DayGenerator._arg.
U, P, C, B, S, N, F = "uint", "principal", "contract", "bool", "buff", "optional", "ascii"


@dataclass(frozen=True)
class Function:
    name: str
    args: tuple[tuple[str, str], ...]  # (arg name, kind)
    weight: float = 1.0

    @property
    def signature(self) -> str:
        clarity_type = {
            U: "uint",
            P: "principal",
            C: "<ft-trait>",
            B: "bool",
            S: "(buff 34)",
            N: "(optional (buff 34))",
            F: "(string-ascii 64)",
        }
        params = " ".join(f"({name} {clarity_type[kind]})" for name, kind in self.args)
        return f"(define-public ({self.name} {params}))" if params else f"(define-public ({self.name}))"


@dataclass(frozen=True)
class Contract:
    contract_id: str
    functions: tuple[Function, ...]


_TRANSFER = Function("transfer", (("amount", U), ("sender", P), ("recipient", P), ("memo", N)))
_SWAP = (("token-x", C), ("token-y", C), ("factor", U), ("dx", U), ("min-dy", N))

# (deployer number, contract name, functions); deployers are namespaced "deployer" accounts.
_SPECS: list[tuple[int, str, tuple[Function, ...]]] = [
    (
        1,
        "amm-swap-pool-v1-1",
        (
            Function("swap-x-for-y", _SWAP, 4),
            Function("swap-y-for-x", _SWAP, 3),
            Function("swap-helper", _SWAP, 2),
            Function("add-to-position", _SWAP[:4]),
            Function("reduce-position", _SWAP[:3], 0.5),
        ),
    ),
    (
        2,
        "stackingdao-core-v2",
        (
            Function("deposit", (("reserve", C), ("stx-amount", U), ("referrer", P)), 4),
            Function("init-withdraw", (("reserve", C), ("ststx-amount", U)), 1.5),
            Function("withdraw", (("reserve", C), ("nft-id", U)), 1),
        ),
    ),
    (3, "sbtc-token", (_TRANSFER,)),
    (
        4,
        "univ2-router",
        (
            Function(
                "swap-exact-tokens-for-tokens",
                (("id", U), ("token0", C), ("token1", C), ("amt-in", U), ("amt-out-min", U)),
                4,
            ),
            Function("add-liquidity", (("id", U), ("amt0", U), ("amt1", U)), 0.7),
        ),
    ),
    (
        5,
        "pox-4",
        (
            Function("stack-stx", (("amount-ustx", U), ("start-burn-ht", U), ("lock-period", U)), 1),
            Function("delegate-stx", (("amount-ustx", U), ("delegate-to", P)), 2),
            Function("stack-extend", (("extend-count", U), ("signer-key", S)), 0.5),
            Function("revoke-delegate-stx", (), 0.3),
        ),
    ),
    (6, "wrapped-bitcoin", (_TRANSFER,)),
    (
        7,
        "xyk-core-v-1-2",
        (
            Function("swap-x-for-y", (("pool", C), ("x-token", C), ("y-token", C), ("x-amount", U), ("min-dy", U)), 3),
            Function("swap-y-for-x", (("pool", C), ("x-token", C), ("y-token", C), ("y-amount", U), ("min-dx", U)), 2),
        ),
    ),
    (8, "welshcorgicoin-token", (_TRANSFER,)),
    (9, "arkadiko-swap-v2-1", (Function("swap-x-for-y", _SWAP[:4], 2), Function("swap-y-for-x", _SWAP[:4], 1))),
    (
        10,
        "pool-borrow-v2-1",
        (
            Function("supply", (("lp", C), ("pool-reserve", P), ("asset", C), ("amount", U)), 2),
            Function("borrow", (("pool-reserve", P), ("asset", C), ("amount", U)), 1),
            Function("repay", (("asset", C), ("amount", U), ("on-behalf-of", P)), 1),
        ),
    ),
    (11, "ststx-token", (_TRANSFER,)),
    (12, "token-alex", (_TRANSFER,)),
    (13, "pyth-oracle-v3", (Function("verify-and-update-price-feeds", (("price-feed-bytes", S),), 1),)),
    (
        14,
        "bns-v2",
        (
            Function("name-preorder", (("hashed-salted-fqn", S), ("stx-to-burn", U)), 1),
            Function("name-register", (("namespace", S), ("name", S), ("salt", S)), 1),
            Function("transfer", (("id", U), ("owner", P), ("recipient", P)), 0.5),
        ),
    ),
    (15, "send-many-memo", (Function("send-many", (("recipients", S),), 1),)),
    (
        16,
        "stableswap-stx-ststx-v-1-2",
        (Function("swap-x-for-y", (("y-token", C), ("lp-token", C), ("x-amount", U), ("min-y-amount", U)), 2),),
    ),
    (17, "leo-token", (_TRANSFER,)),
    (18, "usda-token", (_TRANSFER,)),
    (
        19,
        "sbtc-deposit",
        (Function("complete-deposit-wrapper", (("txid", S), ("vout-index", U), ("amount", U), ("recipient", P)), 1),),
    ),
    (
        20,
        "marketplace-v4",
        (
            Function("list-item", (("nft-asset", C), ("id", U), ("price", U)), 1),
            Function("buy-item", (("nft-asset", C), ("id", U)), 1),
            Function("unlist-item", (("nft-asset", C), ("id", U)), 0.5),
        ),
    ),
    (21, "megapont-ape-club-nft", (Function("transfer", (("id", U), ("sender", P), ("recipient", P)), 1),)),
    (22, "stacks-punks-v3", (Function("transfer", (("id", U), ("sender", P), ("recipient", P)), 1),)),
    (
        23,
        "faktory-dex",
        (Function("buy", (("ft", C), ("ustx", U)), 2), Function("sell", (("ft", C), ("amount", U)), 1)),
    ),
    (24, "charisma-token", (_TRANSFER, Function("claim", (), 0.5))),
    (25, "lending-pool-v2", (Function("deposit", (("amount", U),), 1), Function("withdraw", (("amount", U),), 1))),
    (26, "stacking-dao-rewards-v1", (Function("claim", (("cycle", U),), 1),)),
    (27, "boom-nfts", (Function("mint", (("uri", F),), 1),)),
    (
        28,
        "lnswap-v2",
        (
            Function("claim", (("preimage", S), ("amount", U)), 1),
            Function("lock", (("hash", S), ("amount", U), ("timelock", U)), 1),
        ),
    ),
    (29, "dao-voting-v1", (Function("vote", (("proposal", P), ("for", B)), 1),)),
    (30, "nakamoto-signer-registry", (Function("register-signer", (("signer-key", S), ("auth-id", U)), 1),)),
]

# Contract position that gets the hostile name: popular enough to show up in "top contracts" views.
_HOSTILE_CONTRACT_RANK = 2
_HOSTILE_FUNCTION_RANK = 0


def build_catalog(hostile: bool) -> list[Contract]:
    contracts = []
    for rank, (deployer, name, functions) in enumerate(_SPECS):
        if hostile and rank == _HOSTILE_CONTRACT_RANK:
            name = HOSTILE_CONTRACT_NAME
        if hostile and rank == _HOSTILE_FUNCTION_RANK:
            first = functions[0]
            functions = (Function(HOSTILE_FUNCTION_NAME, first.args, first.weight), *functions[1:])
        contracts.append(Contract(f"{ids.address('deployer', deployer)}.{name}", functions))
    return contracts


def zipf_weights(count: int, exponent: float = 1.1) -> list[float]:
    return [1.0 / (rank + 1) ** exponent for rank in range(count)]


# Words for contract names deployed by `smart_contract` transactions.
DEPLOY_WORDS = (
    "token",
    "pool",
    "vault",
    "dao",
    "nft",
    "swap",
    "meme",
    "staking",
    "bridge",
    "oracle",
    "launchpad",
    "farm",
    "lottery",
    "airdrop",
    "multisig",
    "escrow",
)

SOURCE_TEMPLATE = """;; {name} -- deployed by the stx-pipeline simulator
(define-data-var counter uint u0)
(define-public (bump)
  (begin (var-set counter (+ (var-get counter) u1)) (ok (var-get counter))))
(define-read-only (get-counter) (var-get counter))
"""

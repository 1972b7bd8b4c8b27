"""Deterministic identifiers: c32check addresses, hashes and Clarity value encodings.

Everything here is a pure function of its arguments (no RNG state), so any day of the synthetic
chain can derive the same address or block hash without knowing what other days generated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import lru_cache

C32_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAINNET_SINGLE_SIG = 22  # c32 version byte that renders as the "SP" prefix


def digest(*parts: object, size: int = 32) -> bytes:
    """Stable hash of the parts (blake2b: fast, and unaffected by PYTHONHASHSEED)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return hashlib.blake2b(text, digest_size=size).digest()


def unit(*parts: object) -> float:
    """A deterministic float in [0, 1) for structural choices that must not depend on a shared RNG."""
    return int.from_bytes(digest(*parts, size=8), "big") / 2**64


def hex_hash(*parts: object, size: int = 32) -> str:
    return "0x" + digest(*parts, size=size).hex()


_FIVE_BITS = {format(i, "05b"): char for i, char in enumerate(C32_ALPHABET)}


def c32encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    # Slicing the binary string 5 bits at a time is ~3x faster than repeated divmod in Python.
    width = -(-len(data) * 8 // 5) * 5
    bits = format(number, f"0{width}b")
    encoded = "".join(_FIVE_BITS[bits[i : i + 5]] for i in range(0, width, 5)).lstrip("0")
    # c32check keeps one "0" per leading zero byte, like base58 does.
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "0" * zeros + encoded


def c32_address(version: int, hash160: bytes) -> str:
    checksum = hashlib.sha256(hashlib.sha256(bytes([version]) + hash160).digest()).digest()[:4]
    return "S" + C32_ALPHABET[version] + c32encode(hash160 + checksum)


@lru_cache(maxsize=1 << 18)
def account_hash160(kind: str, number: int) -> bytes:
    raw = bytearray(digest("account", kind, number, size=20))
    # Keep the first byte in 0x02..0x3F: the 24 encoded bytes then always give exactly 38 c32 chars,
    # so every address is "SP" + 38 chars while still being a valid c32check address.
    raw[0] = 0x02 + raw[0] % 0x3E
    return bytes(raw)


@lru_cache(maxsize=1 << 18)
def address(kind: str, number: int) -> str:
    """Mainnet address of an account; `kind` namespaces wallets, miners, sponsors and deployers."""
    return c32_address(MAINNET_SINGLE_SIG, account_hash160(kind, number))


def c32_decode_hash160(addr: str) -> bytes:
    """Inverse of `address` (used to serialize principals as Clarity values); no checksum check."""
    number = 0
    for char in addr[2:]:
        number = number * 32 + C32_ALPHABET.index(char)
    return number.to_bytes(24, "big")[:20]


def iso(ts: int) -> str:
    """Hiro's timestamp format: `2020-07-13T13:46:35.000Z`."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --- Clarity value serialization (SIP-005), enough for realistic `function_args` hex -------------


def cv_uint(value: int) -> dict[str, str]:
    return {"hex": "0x01" + value.to_bytes(16, "big").hex(), "repr": f"u{value}", "type": "uint"}


def cv_bool(value: bool) -> dict[str, str]:
    return {"hex": "0x03" if value else "0x04", "repr": "true" if value else "false", "type": "bool"}


@lru_cache(maxsize=1 << 17)
def cv_principal(addr: str) -> dict[str, str]:
    """Cached: callers copy the fields they need and must not mutate the returned dict."""
    if "." in addr:
        deployer, name = addr.split(".", 1)
        raw = name.encode()
        body = "06" + f"{MAINNET_SINGLE_SIG:02x}" + c32_decode_hash160(deployer).hex()
        body += f"{len(raw) & 0xFF:02x}" + raw.hex()
        return {"hex": "0x" + body, "repr": f"'{addr}", "type": "principal"}
    body = "05" + f"{MAINNET_SINGLE_SIG:02x}" + c32_decode_hash160(addr).hex()
    return {"hex": "0x" + body, "repr": f"'{addr}", "type": "principal"}


def cv_buff(raw: bytes) -> dict[str, str]:
    return {
        "hex": "0x02" + len(raw).to_bytes(4, "big").hex() + raw.hex(),
        "repr": "0x" + raw.hex(),
        "type": f"(buff {max(len(raw), 1)})",
    }


def cv_ascii(text: str) -> dict[str, str]:
    raw = text.encode("ascii", "replace")
    return {
        "hex": "0x0d" + len(raw).to_bytes(4, "big").hex() + raw.hex(),
        "repr": '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"',
        "type": f"(string-ascii {max(len(raw), 1)})",
    }


def cv_none() -> dict[str, str]:
    return {"hex": "0x09", "repr": "none", "type": "(optional none)"}

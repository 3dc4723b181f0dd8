"""Security advisories in CSAF 2.0 (the format CISA publishes every ICS advisory in), imported from local files,
and their match against the device inventory.

A file is read only when the `.sha512` next to it holds its SHA-512 (as CSAF providers publish it): a changed or
truncated file is refused with the reason, never half-used. From each advisory: its id, title, CVEs with the
highest CVSS base score, the affected products (the `product_tree` branches vendor > product_name >
product_version or product_version_range, and `product_status.known_affected`) and the remediations.

Matching a device (vendor, product, firmware): vendor and product compare case- and space-insensitively; a
version is compared as its numbers ("V2.10.3" -> 2.10.3). A range in `vers:` syntax (`vers:generic/>=1.0|<2.3`)
or as plain comparisons (`<= 4.1`, `>=1.0 <2.0`) is evaluated. When the answer cannot be known (no firmware in the
inventory, a version or range that does not parse, a product name that only contains the other) the match is
reported as **ambiguous**, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class AffectedProduct:
    product_id: str
    vendor: str
    product: str
    versions: str | None  # an exact version, a range expression, or None (every version)
    is_range: bool = False


@dataclass
class Advisory:
    id: str
    title: str
    cves: list[str]
    score: float | None
    products: list[AffectedProduct]
    remediations: list[str] = field(default_factory=list)
    source: str = ""


@dataclass(frozen=True)
class Match:
    advisory: Advisory
    product: AffectedProduct
    certain: bool
    why: str


def _norm(s: str | None) -> str:
    return re.sub(r"[\s_\-]+", " ", (s or "").strip().lower())


def load_dir(path: str | Path) -> tuple[list[Advisory], list[str]]:
    """(advisories, problems): every *.json under path with a matching .sha512; a problem per refused file."""
    out, problems = [], []
    root = Path(path).resolve()
    for f in sorted(Path(path).rglob("*.json")):
        try:
            if not f.resolve().is_relative_to(root) or not f.resolve().is_file():
                raise ValueError("not a regular file inside the advisories directory (a link out of it?)")
            data = f.read_bytes()
            if len(data) > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            sha = Path(str(f) + ".sha512")
            if not sha.is_file():
                raise ValueError("no .sha512 next to it")
            want = sha.read_text().split()[0].strip().lower() if sha.read_text().split() else ""
            if hashlib.sha512(data).hexdigest() != want:
                raise ValueError("its SHA-512 does not match the .sha512 file")
            out.append(parse(json.loads(data), source=str(f)))
        except RecursionError:  # JSON nested deeper than Python's stack: one bad file must not stop the audit
            problems.append(f"{f}: refused: nested too deeply")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            problems.append(f"{f}: refused: {e}")
    return out, problems


def parse(doc: dict, source: str = "") -> Advisory:
    if not isinstance(doc, dict) or "document" not in doc:
        raise ValueError("not a CSAF document (no 'document')")
    d = doc["document"]
    track = d.get("tracking", {}) if isinstance(d, dict) else {}
    products: dict[str, AffectedProduct] = {}

    def walk(branches, vendor=None, product=None):
        for b in branches or []:
            if not isinstance(b, dict):
                continue
            cat, name = b.get("category"), str(b.get("name", ""))
            v, p = vendor, product
            if cat == "vendor":
                v = name
            elif cat in ("product_name", "product_family"):
                p = name if cat == "product_name" or p is None else p
            if "product" in b and isinstance(b["product"], dict):
                pid = b["product"].get("product_id")
                if pid:
                    if cat == "product_version":
                        products[pid] = AffectedProduct(pid, v or "", p or "", name, False)
                    elif cat == "product_version_range":
                        products[pid] = AffectedProduct(pid, v or "", p or "", name, True)
                    else:
                        products[pid] = AffectedProduct(pid, v or "", p or name, None, False)
            walk(b.get("branches"), v, p)

    walk(doc.get("product_tree", {}).get("branches"))
    affected: list[AffectedProduct] = []
    cves, score, rems = [], None, []
    for vuln in doc.get("vulnerabilities", []) or []:
        if vuln.get("cve"):
            cves.append(vuln["cve"])
        for s in vuln.get("scores", []) or []:
            base = (s.get("cvss_v3") or s.get("cvss_v4") or {}).get("baseScore")
            if isinstance(base, (int, float)):
                score = max(score or 0.0, float(base))
        for pid in (vuln.get("product_status", {}) or {}).get("known_affected", []) or []:
            if pid in products and products[pid] not in affected:
                affected.append(products[pid])
        for r in vuln.get("remediations", []) or []:
            if r.get("details"):
                rems.append(str(r["details"])[:500])
    return Advisory(str(track.get("id", source)), str(d.get("title", "")), cves, score, affected, rems, source)


# -- versions ---------------------------------------------------------------------------------------------------------
def version_key(v: str) -> tuple[int, ...] | None:
    nums = re.findall(r"\d+", v or "")
    return tuple(int(x) for x in nums) if nums else None


def _cmp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = max(len(a), len(b))
    a, b = a + (0,) * (n - len(a)), b + (0,) * (n - len(b))
    return (a > b) - (a < b)


_OPS = {"<": lambda c: c < 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0, ">=": lambda c: c >= 0, "=": lambda c: c == 0,
        "!=": lambda c: c != 0}


def in_range(version: str, spec: str) -> bool | None:
    """True/False when the version is (not) in the range, None when either does not parse."""
    have = version_key(version)
    if have is None:
        return None
    s = spec.strip()
    if s.startswith("vers:"):
        body = s.split("/", 1)[1] if "/" in s else ""
        if body.strip() == "*":
            return True
        parts = [p.strip() for p in body.split("|") if p.strip()]
    else:
        parts = re.findall(r"(<=|>=|!=|<|>|=)\s*([^\s,<>=!]+)", s)
        parts = [op + v for op, v in parts]
    if not parts:
        return None
    lower_ok, upper_ok, exact = True, True, []
    for p in parts:
        m = re.match(r"^(<=|>=|!=|<|>|=)?\s*(.+)$", p)
        op, v = (m.group(1) or "="), m.group(2)
        k = version_key(v)
        if k is None:
            return None
        c = _cmp(have, k)
        if op == "=":
            exact.append(c == 0)
        elif op in (">", ">="):
            lower_ok = lower_ok and _OPS[op](c)
        elif op in ("<", "<="):
            upper_ok = upper_ok and _OPS[op](c)
        elif op == "!=" and c == 0:
            return False
    if exact:
        return any(exact) or (lower_ok and upper_ok and len(exact) < len(parts))
    return lower_ok and upper_ok


class AdvisoryIndex:
    """Advisories indexed by vendor, so an audit of many devices compares each with its vendor's products only."""

    def __init__(self, advisories: list[Advisory]) -> None:
        self.advisories = advisories
        self._by_vendor: dict[str, list[tuple[Advisory, AffectedProduct]]] = {}
        for a in advisories:
            for p in a.products:
                self._by_vendor.setdefault(_norm(p.vendor), []).append((a, p))

    def match(self, vendor: str | None, product: str | None, firmware: str | None) -> list[Match]:
        if not vendor or not product:
            return []
        out = []
        want = _norm(product)
        for adv, p in self._by_vendor.get(_norm(vendor), []):
            have = _norm(p.product)
            if have == want:
                certain_name = True
            elif have and (have in want or want in have):
                certain_name = False
            else:
                continue
            if p.versions is None:
                ok, why = True, "every version is affected"
            elif not firmware:
                ok, why = None, "the inventory has no firmware version"
            elif p.is_range:
                ok = in_range(firmware, p.versions)
                why = f"firmware {firmware} against the range {p.versions!r}"
            else:
                a, b = version_key(firmware), version_key(p.versions)
                ok = None if a is None or b is None else _cmp(a, b) == 0
                why = f"firmware {firmware} against the affected version {p.versions}"
            if ok is False:
                continue
            certain = certain_name and ok is True
            if not certain_name:
                why = f"the product names only partly agree ({product!r} / {p.product!r}); " + why
            elif ok is None:
                why = why + " (cannot be compared)"
            out.append(Match(adv, p, certain, why))
        return out

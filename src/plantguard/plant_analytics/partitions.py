"""The analytics state cut by partition and put together again (see plantguard.domain.partition).

Each partition's state is checkpointed on its own (`analytics@<key>`), so a worker that takes a partition over
loads that partition's learned state only, and continues exactly where its previous owner stopped (the banks'
take/absorb keep every slot's state; tests/test_partitions.py).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

from plantguard.plant_analytics.processor import _State


def split(st: _State, key_of: Callable[[str], str]) -> dict[str, _State]:
    """One state per partition key, holding copies of that partition's slots and detectors only."""
    spc: dict[str, list] = defaultdict(list)
    rz: dict[str, list] = defaultdict(list)
    for tag, (slot, fp) in st.spc_keys.items():
        spc[key_of(tag)].append((tag, slot, fp))
    for tag, (slot, fp) in st.rz_keys.items():
        rz[key_of(tag)].append((tag, slot, fp))
    keys = set(spc) | set(rz) | {key_of(t) for t in st.dets} | {key_of(a) for a in st.assets_mv} | \
        {key_of(a) for a in st.assets_rul}
    out = {}
    for key in keys:
        part = _State(spc=st.spc.take([s for _, s, _ in spc[key]]), rz=st.rz.take([s for _, s, _ in rz[key]]))
        part.spc_keys = {t: (i, fp) for i, (t, _s, fp) in enumerate(spc[key])}
        part.rz_keys = {t: (i, fp) for i, (t, _s, fp) in enumerate(rz[key])}
        part.dets = {t: v for t, v in st.dets.items() if key_of(t) == key}
        part.assets_mv = {a: v for a, v in st.assets_mv.items() if key_of(a) == key}
        part.assets_rul = {a: v for a, v in st.assets_rul.items() if key_of(a) == key}
        part.spc_memory = {t: v for t, v in getattr(st, "spc_memory", {}).items() if key_of(t) == key}
        out[key] = part
    return out


def merge(parts: Iterable[_State], into: _State | None = None) -> _State:
    """One state holding every part (a later part wins for a key present in two)."""
    st = into or _State()
    for p in parts:
        new = st.spc.absorb(p.spc)
        st.spc_keys.update({t: (new[i], fp) for t, (i, fp) in p.spc_keys.items()})
        new = st.rz.absorb(p.rz)
        st.rz_keys.update({t: (new[i], fp) for t, (i, fp) in p.rz_keys.items()})
        st.dets.update(p.dets)
        st.assets_mv.update(p.assets_mv)
        st.assets_rul.update(p.assets_rul)
        st.spc_memory = {**getattr(st, "spc_memory", {}), **getattr(p, "spc_memory", {})}
    return st

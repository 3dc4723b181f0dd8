"""Signal models: what each simulated point reads, computed for all points at once per tick.

Every point gets a SignalSpec (explicit for the demo line, inferred from unit/data type otherwise). Per tick:

    machine state per asset (line schedule + faults) -> target level per point (+ bearing wear, ambient)
    -> first-order lag (thermal inertia, hydraulics) -> noise -> clip to the engineering range -> round

Randomness comes from counter-keyed streams (seed, stream, block of ticks), so a value depends only on the seed,
the absolute tick and the history since the start: identical whether it is generated in one chunk or tick by tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from plantguard.domain.fields import DataType, us_of
from plantguard.domain.model import PlantConfig
from plantguard.timeutil import US

# Machine state codes shared by every state point of the simulated plant.
STOPPED, RUNNING, IDLE, FAULT = 0, 1, 2, 3
STATE_NAMES = {STOPPED: "stopped", RUNNING: "running", IDLE: "idle/starved", FAULT: "fault"}

KINDS = ("vibration", "temperature", "pressure", "flow", "current", "speed", "level", "torque", "generic",
         "counter", "state", "running")
_BLOCK = 256  # ticks per random block
_NOISE, _POISSON, _LINE, _SPIKE, _FLOOD = 1, 2, 3, 4, 5  # stream ids


@dataclass(frozen=True, kw_only=True)
class SignalSpec:
    """How one point behaves. `levels` are the steady values in machine state stopped, running, idle, fault
    (temperatures at 25 degC ambient)."""

    kind: str = "generic"
    levels: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    noise: float = 0.0  # absolute standard deviation
    noise_rel: float = 0.0  # relative standard deviation (vibration RMS scatters in proportion to its level)
    tau_s: float = 0.0  # first-order lag time constant; 0 follows the target at once
    rate: float = 0.0  # counters: counts per second while running
    wear_gain: float = 0.0  # added at full bearing wear of the point's asset, while the machine turns
    ambient: bool = False  # follows the daily ambient temperature swing
    decimals: int = 3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown signal kind {self.kind!r}; one of {', '.join(KINDS)}")


def infer_spec(point, asset_kind: str = "") -> SignalSpec:
    """A plausible spec for a point of any plant model, from its data type, unit, id and range."""
    pid = point.id.lower()
    unit = (point.unit or "").strip()
    lo, hi = (point.range.low, point.range.high) if point.range else (0.0, 100.0)
    span = hi - lo
    if point.data_type == DataType.state:
        return SignalSpec(kind="state", decimals=0)
    if point.data_type == DataType.bool:
        return SignalSpec(kind="running", levels=(0, 1, 1, 0), decimals=0)
    if point.data_type == DataType.int:
        if "count" in pid or "total" in pid:
            return SignalSpec(kind="counter", rate=0.1 if ("bad" in pid or "reject" in pid) else 5.0, decimals=0)
        mid = lo + 0.5 * span
        return SignalSpec(kind="generic", levels=(lo + 0.2 * span, mid, lo + 0.4 * span, lo + 0.2 * span),
                          noise=0.01 * span, tau_s=5, decimals=0)
    bearing = "bearing" in pid
    if unit in ("mm/s", "in/s"):
        k = 1.0 if unit == "mm/s" else 1 / 25.4
        return SignalSpec(kind="vibration", levels=(0.1 * k, 1.2 * k, 1.0 * k, 0.1 * k), noise=0.02 * k, noise_rel=0.04,
                          wear_gain=(10.0 if bearing else 3.0) * k)
    if unit in ("degC", "°C", "C"):
        run = 47.0 if bearing else 60.0
        return SignalSpec(kind="temperature", levels=(25.0, run, run - 3, 25.0), noise=0.15, tau_s=600 if bearing else 900,
                          wear_gain=40.0 if bearing else 8.0, ambient=True, decimals=2)
    frac = {"pressure": (0.03, 0.42, 0.46, 0.03), "flow": (0.0, 0.4, 0.12, 0.0), "current": (0.0, 0.37, 0.27, 0.0)}
    kind = {"bar": "pressure", "kPa": "pressure", "psi": "pressure", "m3/h": "flow", "l/min": "flow", "A": "current"}.get(unit)
    if kind is not None:
        f = frac[kind]
        lv = tuple(lo + x * span for x in f)
        return SignalSpec(kind=kind, levels=lv, noise=0.004 * span, tau_s=2.0,
                          wear_gain=0.12 * (lv[1] - lo) if kind == "current" else 0.0)
    lv = (lo + 0.2 * span, lo + 0.55 * span, lo + 0.45 * span, lo + 0.2 * span)
    return SignalSpec(kind="generic", levels=lv, noise=0.005 * span, tau_s=5.0)


@lru_cache(maxsize=4096)
def _line_events(seed: int, line: int, hour: int) -> tuple[tuple[int, int], ...]:
    """Idle/starved spells of one line within one hour (offsets in us): a few short upstream hiccups per hour."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_LINE, line, hour))))
    n = int(rng.poisson(2.5))
    starts = np.sort(rng.uniform(0, 3600, n))
    durs = rng.uniform(20, 150, n)
    return tuple((int(s * US), int(min(3600.0, s + d) * US)) for s, d in zip(starts, durs))


def line_states(seed: int, line: int, t_us: np.ndarray) -> np.ndarray:
    """State code (RUNNING or IDLE) of one line at each time in t_us."""
    hour, off = np.divmod(t_us, 3600 * US)
    st = np.full(len(t_us), RUNNING, np.int64)
    for h in np.unique(hour).tolist():
        m = hour == h
        for a, b in _line_events(seed, line, int(h)):
            st[m & (off >= a) & (off < b)] = IDLE
    return st


def ambient_offset(t_us: np.ndarray) -> np.ndarray:
    """Daily ambient swing around 25 degC, warmest at 15:00 UTC."""
    return 3.0 * np.sin(2 * np.pi * ((t_us / US / 3600.0 - 9.0) / 24.0))


class _Blocks:
    """Random rows per tick from a keyed stream: row(k) is the same whatever order ticks are asked for in."""

    def __init__(self, seed: int, stream: int, draw) -> None:
        self.seed, self.stream, self.draw = seed, stream, draw
        self._block = None
        self._data = None

    def _load(self, b: int) -> np.ndarray:
        if b != self._block:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(self.stream, b & 0x7FFFFFFF, b >> 31))))
            self._data = self.draw(rng)
            self._block = b
        return self._data

    def rows(self, k0: int, n: int) -> np.ndarray:
        """Rows for ticks k0 .. k0 + n - 1."""
        parts = []
        k = k0
        while k < k0 + n:
            b, i = divmod(k, _BLOCK)
            take = min(_BLOCK - i, k0 + n - k)
            parts.append(self._load(b)[i:i + take])
            k += take
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def keyed_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(int(x) for x in key))))


class PlantModel:
    """Index arrays over the configured points (config order) and the per-tick physics."""

    def __init__(self, cfg: PlantConfig, seed: int, specs: dict[str, SignalSpec] | None = None) -> None:
        self.cfg = cfg
        self.seed = int(seed)
        specs = specs or {}
        tags, dev_of, asset_of, line_of, pspecs, periods, points = [], [], [], [], [], [], []
        self.devices: list[str] = []
        self.assets: list[str] = []
        self.lines: list[str] = []
        dev_ix: dict[str, int] = {}
        asset_ix: dict[str, int] = {}
        line_ix: dict[str, int] = {}
        for tag, s, a, ln, asset, d, p in cfg.iter_points():
            parts = tag.split("/")
            lpath, apath, dpath = "/".join(parts[:3]), "/".join(parts[:4]), "/".join(parts[:5])
            for path, ix, lst in ((lpath, line_ix, self.lines), (apath, asset_ix, self.assets), (dpath, dev_ix, self.devices)):
                if path not in ix:
                    ix[path] = len(lst)
                    lst.append(path)
            tags.append(tag)
            points.append(p)
            dev_of.append(dev_ix[dpath])
            asset_of.append(asset_ix[apath])
            line_of.append(line_ix[lpath])
            pspecs.append(_lookup(specs, parts) or infer_spec(p, asset.kind))
            periods.append(us_of(p.period))
        self.tags = tags
        self.tag_arr = np.array(tags, dtype=object)
        self.points = points
        self.specs = pspecs
        self.n = n = len(tags)
        self.device_of = np.array(dev_of, np.int32)
        self.asset_of = np.array(asset_of, np.int32)
        self.line_of = np.array(line_of, np.int32)
        self.line_of_asset = np.zeros(len(self.assets), np.int64)
        self.line_of_asset[self.asset_of] = self.line_of
        self.period_us = np.array(periods, np.int64)
        # the base tick: gcd of all periods, at least 10 ms, whole milliseconds (MQTT timestamps are in ms)
        g = 0
        for per in set(periods):
            g = math.gcd(g, int(per))
        self.tick_us = max(10_000, (g // 1000) * 1000) if g else US
        self.period_ticks = np.maximum(1, self.period_us // self.tick_us)
        kind = [sp.kind for sp in pspecs]
        self.is_counter = np.array([k == "counter" for k in kind])
        self.is_state = np.array([k == "state" for k in kind])
        self.is_running = np.array([k == "running" for k in kind])
        self.is_analog = ~(self.is_counter | self.is_state | self.is_running)
        self.levels = np.array([sp.levels for sp in pspecs], np.float64).reshape(n, 4)
        self.noise = np.array([sp.noise for sp in pspecs])
        self.noise_rel = np.array([sp.noise_rel for sp in pspecs])
        dt = self.tick_us / US
        self.alpha = np.array([1.0 if sp.tau_s <= 0 else 1.0 - math.exp(-dt / sp.tau_s) for sp in pspecs])
        self.wear_gain = np.array([sp.wear_gain for sp in pspecs])
        self.ambient = np.array([sp.ambient for sp in pspecs])
        self.rate = np.array([sp.rate for sp in pspecs])
        self.decimals = np.array([sp.decimals for sp in pspecs])
        self.low = np.array([p.range.low if p.range else -np.inf for p in points])
        self.high = np.array([p.range.high if p.range else np.inf for p in points])
        self.span = np.where(np.isfinite(self.high - self.low), self.high - self.low, 100.0)
        self.integer = np.array([p.data_type in (DataType.int, DataType.state, DataType.bool) for p in points])
        self.scale = np.where(self.integer, 1.0, 10.0 ** self.decimals)  # sensor resolution
        # state points report the machine state; a code the point does not define falls back to its lowest
        self.state_map = np.tile(np.arange(4, dtype=np.float64), (n, 1))
        for i, p in enumerate(points):
            if p.data_type == DataType.state and p.states:
                codes = sorted(int(c) for c in p.states)
                self.state_map[i] = [c if c in codes else codes[0] for c in range(4)]
        self.counter_ix = np.flatnonzero(self.is_counter)
        self.analog_ix = np.flatnonzero(self.is_analog)
        self._cols = np.arange(n)
        lam = self.rate[self.counter_ix] * dt
        self._normal = _Blocks(self.seed, _NOISE, lambda r: r.standard_normal((_BLOCK, n)))
        self._poisson = _Blocks(self.seed, _POISSON, lambda r: r.poisson(lam, (_BLOCK, len(lam))).astype(np.float64))

    # -- lookups -------------------------------------------------------------------------------------------
    def find(self, name: str, kind: str) -> int:
        """Index of a point/device/asset given its full path or a unique trailing part of it
        ('filler-feed-pump/wsn' for a device)."""
        pool = {"point": self.tags, "device": self.devices, "asset": self.assets}[kind]
        name = name.strip("/")
        hits = [i for i, t in enumerate(pool) if t == name or t.endswith("/" + name)]
        if len(hits) != 1:
            what = "no" if not hits else "more than one"
            raise ValueError(f"{what} {kind} matches {name!r}")
        return hits[0]

    # -- physics -------------------------------------------------------------------------------------------
    def machine_state(self, t_us: np.ndarray, failed: np.ndarray, stopped: np.ndarray) -> np.ndarray:
        """State code per tick and asset (n, assets): the line's schedule; a tripped asset takes its whole line down
        (FAULT: there is no standby); a stopped line is STOPPED. failed is (n, assets), stopped (n, lines)."""
        ls = np.stack([line_states(self.seed, li, t_us) for li in range(len(self.lines))], axis=1)
        st = ls[:, self.line_of_asset]
        if failed.any():
            down = np.zeros(stopped.shape, bool)
            for a in np.flatnonzero(failed.any(axis=0)):
                down[:, self.line_of_asset[a]] |= failed[:, a]
            st = np.where(down[:, self.line_of_asset], FAULT, st)
        if stopped.any():
            st = np.where(stopped[:, self.line_of_asset], STOPPED, st)
        return st

    def target(self, t_us: np.ndarray, asset_state: np.ndarray, wear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Steady-state value per tick and point (n, points), and the machine state each point sees."""
        st = asset_state[:, self.asset_of]
        tgt = self.levels[self._cols, st]
        turning = (st == RUNNING) | (st == IDLE)
        tgt += self.wear_gain * wear[:, self.asset_of] * turning
        tgt += self.ambient * ambient_offset(t_us)[:, None]
        return tgt, st

    def initial(self, t_us: int, asset_state: np.ndarray, wear: np.ndarray) -> np.ndarray:
        """State vector at the first tick: analog points settled, counters at a plausible shift total."""
        y, _ = self.target(np.array([t_us]), asset_state[:1], wear[:1])
        y = y[0]
        since = (t_us % (86400 * US)) / US  # counters resume from what the line made since midnight UTC
        y[self.is_counter] = np.floor(self.rate[self.is_counter] * since * 0.9)
        return y

    def block(self, k0: int, t_us: np.ndarray, asset_state: np.ndarray, wear: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Readings of all points for ticks k0 .. k0 + n - 1 (n, points); advances the state vector y in place."""
        n = len(t_us)
        tgt, st = self.target(t_us, asset_state, wear)
        out = np.empty((n, self.n))
        # first-order lag: the only sequential step, one vector update per tick
        a, ix = self.alpha[self.analog_ix], self.analog_ix
        ya = y[ix].copy()
        ta = tgt[:, ix]
        ya_rows = np.empty((n, len(ix)))
        for r in range(n):
            ya += a * (ta[r] - ya)
            ya_rows[r] = ya
        y[ix] = ya
        out[:, ix] = ya_rows
        if len(self.counter_ix):
            inc = self._poisson.rows(k0, n) * (st[:, self.counter_ix] == RUNNING)
            cum = y[self.counter_ix] + np.cumsum(inc, axis=0)
            y[self.counter_ix] = cum[-1]
            out[:, self.counter_ix] = cum
        z = self._normal.rows(k0, n)
        out += (self.noise + self.noise_rel * np.abs(out)) * z * self.is_analog
        out = np.where(self.is_state, self.state_map[self._cols, st], out)
        out = np.where(self.is_running, tgt, out)
        return self.round(np.clip(out, self.low, self.high))

    def round(self, v: np.ndarray) -> np.ndarray:
        return np.rint(v * self.scale) / self.scale


def _lookup(specs: dict[str, SignalSpec], parts: list[str]) -> SignalSpec | None:
    """Explicit specs are keyed by the whole tag or its trailing asset/device/point."""
    if not specs:
        return None
    return specs.get("/".join(parts)) or specs.get("/".join(parts[-3:]))

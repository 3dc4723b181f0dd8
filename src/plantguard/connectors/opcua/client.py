"""Thin adapter over asyncua (pinned 2.1.*): the only module that imports it. Callers get plain values and
OpcUaError subclasses, never asyncua types or exceptions.

The session is used through the raw services (CreateSubscription with our own publish callback,
CreateMonitoredItems, Read, Browse) rather than asyncua's Subscription class, for two reasons: one publish
response becomes one batch (not one callback task per value), and recovery stays with the connector's
supervisor (asyncua's own auto-reconnect is off), so every reconnect starts from a fresh client and a dead
session leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Hashable

from asyncua import Client, ua
from asyncua.crypto import security_policies

from plantguard.errors import PlantguardError

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
# A server restart shows up as one of these, depending on where the request was when the socket closed.
_TRANSPORT_ERRORS = (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError, EOFError)


# -- errors ----------------------------------------------------------------------------------------------------
class OpcUaError(PlantguardError):
    """Any failure talking to an OPC UA server.

        OpcUaError
        ├── ConnectFailed       the session could not be opened (unreachable, refused, timeout)
        │   └── SecurityRejected  certificates, policy or credentials were refused
        └── SessionLost         an open session died (server restart, network loss, silent server)
    """


class ConnectFailed(OpcUaError):
    pass


class SecurityRejected(ConnectFailed):
    pass


class SessionLost(OpcUaError):
    pass


_SECURITY_CODES = {
    "BadCertificateUntrusted": "the server does not trust the client certificate (add it to the server's trusted list)",
    "BadCertificateInvalid": "the server rejected the client certificate as invalid",
    "BadCertificateUriInvalid": "the client certificate does not carry the configured application_uri",
    "BadSecurityChecksFailed": "security checks failed (certificate not trusted or keys do not match)",
    "BadSecurityPolicyRejected": "the server rejected the security policy",
    "BadIdentityTokenInvalid": "the server rejected the user identity",
    "BadIdentityTokenRejected": "the server rejected the user name or password",
    "BadUserAccessDenied": "the user is not allowed to connect",
}


def _translate(e: BaseException, url: str) -> OpcUaError:
    if isinstance(e, OpcUaError):
        return e
    if isinstance(e, ua.UaStatusCodeError):
        name = ua.StatusCode(e.code).name
        if name in _SECURITY_CODES:
            return SecurityRejected(f"{url}: {_SECURITY_CODES[name]} ({name})")
        return ConnectFailed(f"{url}: {name}")
    text = str(e) or type(e).__name__
    if isinstance(e, ua.UaError) and "certificate mismatch" in text.lower():
        return SecurityRejected(f"{url}: the server presented a certificate other than the trusted server_certificate")
    if isinstance(e, ConnectionRefusedError):
        return ConnectFailed(f"{url}: connection refused (server down or wrong port)")
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return ConnectFailed(f"{url}: no answer within the timeout (with security on, this is also how a server "
                             "behaves that cannot decrypt the request: check server_certificate)")
    if isinstance(e, _TRANSPORT_ERRORS):
        return ConnectFailed(f"{url}: {type(e).__name__}: {text}")
    return ConnectFailed(f"{url}: {type(e).__name__}: {text}")


# -- values ----------------------------------------------------------------------------------------------------
def to_us(dt: datetime | None) -> int | None:
    """Epoch microseconds of an OPC UA DateTime (naive values are UTC); None for a missing or null timestamp."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    us = (dt - _EPOCH) // _US
    return us if us > 0 else None  # DateTime 0 (1601) means "not set"


def status_name(code: int) -> str:
    return ua.StatusCode(code).name


@dataclass(frozen=True, slots=True)
class Change:
    """One value from a data-change notification; handle is the item's index in its subscription."""

    handle: int
    value: Any
    status: int  # the raw 32-bit StatusCode
    source_us: int | None
    server_us: int | None


@dataclass(frozen=True)
class ItemSpec:
    node_id: str
    sampling_interval: float
    deadband: float
    queue_size: int


@dataclass(frozen=True)
class ItemResult:
    ok: bool
    status: str
    revised_sampling_interval: float | None = None
    server_deadband: bool = False  # False: the server refused the filter; the caller applies the deadband itself


@dataclass(frozen=True)
class ReadResult:
    status: int
    value: Any
    latency_s: float

    @property
    def status_name(self) -> str:
        return status_name(self.status)


@dataclass
class VariableInfo:
    """A variable found by walk(): what the browse importer needs."""

    path: list[str]  # browse names from below Objects down to the variable
    node_id: str
    data_type: str  # name of the DataType, e.g. Double, Boolean, Int32; "" if unknown
    unit: str | None = None
    eu_range: tuple[float, float] | None = None
    description: str | None = None
    value_rank: int = -1  # -1 scalar, >= 0 arrays


@dataclass
class Stats:
    publish_responses: int = 0
    dropped: int = 0


# -- session ---------------------------------------------------------------------------------------------------
class Session:
    """One connected OPC UA session. Data changes of all its subscriptions go into one bounded queue, one entry
    per publish response, read with next()."""

    def __init__(self, client: Client, url: str, max_queue: int) -> None:
        self._client = client
        self.url = url
        self._queue: asyncio.Queue[tuple[Hashable, list[Change]]] = asyncio.Queue(max_queue)
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._last_publish = time.monotonic()
        self._stale_after: float | None = None
        self.stats = Stats()
        self.timeout = 4.0
        self.sub_ids: list[int] = []

    @classmethod
    async def open(cls, cfg, *, max_queue: int = 10_000) -> "Session":
        """Connects with cfg (an OpcUaConfig). Raises ConnectFailed / SecurityRejected with a plain message."""
        url = cfg.endpoint
        client = Client(url, timeout=cfg.timeout, watchdog_intervall=cfg.watchdog_interval, auto_reconnect=False)
        client.application_uri = cfg.application_uri
        client.name = client.description = "plantguard"
        client.session_timeout = 60_000  # a restarted server has forgotten the session anyway
        if cfg.username is not None:
            client.set_user(cfg.username)
            client.set_password(cfg.password or "")
        self = cls(client, url, max_queue)
        self.timeout = cfg.timeout
        client.connection_lost_callback = self._on_connection_lost
        sec = cfg.security
        try:
            if sec.mode != "None":
                policy = getattr(security_policies, f"SecurityPolicy{sec.policy}")
                mode = getattr(ua.MessageSecurityMode, sec.mode)
                try:
                    await client.set_security(policy, sec.certificate, sec.private_key, sec.private_key_password,
                                              sec.server_certificate, mode)
                except ua.UaError as e:
                    if "no matching endpoints" in str(e).lower() or "endpoint" in str(e).lower():
                        raise SecurityRejected(f"{url}: the server offers no endpoint with {sec.policy} / {sec.mode}") from e
                    raise
            await asyncio.wait_for(client.connect(), cfg.timeout * 3)
        except BaseException as e:
            await self._abort()
            if isinstance(e, asyncio.CancelledError):
                raise
            if isinstance(e, Exception):
                raise _translate(e, url) from e
            raise
        return self

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._lose(f"connection lost: {type(exc).__name__}: {exc}")

    def _lose(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    async def _abort(self) -> None:
        """Drops the socket and the client's background tasks without talking to the server."""
        c = self._client
        c.uaclient.request_disconnect()
        for name in ("_stale_watchdog_task", "_supervisor_task", "_renew_channel_task"):
            await Client._cancel_task(getattr(c, name, None))
        try:
            c.disconnect_socket()
        except Exception:  # noqa: BLE001 - nothing left to save
            pass
        pub = getattr(c.uaclient, "_publish_task", None)
        if pub is not None and not pub.done():
            pub.cancel()

    async def close(self) -> None:
        """Closes politely when the server is there (deletes the subscriptions with the session), else drops."""
        if not self.lost:
            try:
                await asyncio.wait_for(self._client.disconnect(), 2.0)
            except BaseException as e:  # noqa: BLE001
                if isinstance(e, asyncio.CancelledError):
                    await self._abort()
                    raise
        await self._abort()

    # -- subscriptions ---------------------------------------------------------------------------------------------
    async def subscribe(self, key: Hashable, publishing_interval: float, keepalive_s: float,
                        items: list[ItemSpec]) -> tuple[float, list[ItemResult]]:
        """One subscription with one monitored item per spec (client handle = index). Returns the revised
        publishing interval (ms) and one result per item."""
        try:
            keepalive_count = max(1, round(keepalive_s * 1000 / publishing_interval))
            params = ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=publishing_interval,
                RequestedLifetimeCount=keepalive_count * 10,  # >= 3 keep-alives, as Part 4 requires
                RequestedMaxKeepAliveCount=keepalive_count,
                MaxNotificationsPerPublish=0,
                PublishingEnabled=True,
                Priority=0,
            )
            res = await self._client.uaclient.create_subscription(params, partial(self._on_publish, key))
            self.sub_ids.append(res.SubscriptionId)
            stale = res.RevisedPublishingInterval * res.RevisedMaxKeepAliveCount / 1000 * 3 + self.timeout
            self._stale_after = stale if self._stale_after is None else max(self._stale_after, stale)
            reqs = [self._item_request(i, it, with_filter=True) for i, it in enumerate(items)]
            results = await self._create_items(res.SubscriptionId, reqs)
            out: list[ItemResult] = []
            retry = []
            for i, (it, r) in enumerate(zip(items, results)):
                code = r.StatusCode
                if not code.is_good() and it.deadband > 0 and code.name in (
                        "BadFilterNotAllowed", "BadMonitoredItemFilterUnsupported", "BadMonitoredItemFilterInvalid",
                        "BadDeadbandFilterInvalid"):
                    retry.append(i)
                out.append(ItemResult(code.is_good(), code.name, r.RevisedSamplingInterval, it.deadband > 0 and code.is_good()))
            if retry:
                again = await self._create_items(res.SubscriptionId, [self._item_request(i, items[i], with_filter=False) for i in retry])
                for i, r in zip(retry, again):
                    out[i] = ItemResult(r.StatusCode.is_good(), r.StatusCode.name, r.RevisedSamplingInterval, False)
            self._last_publish = time.monotonic()
            return res.RevisedPublishingInterval, out
        except _TRANSPORT_ERRORS + (ua.UaError,) as e:
            raise SessionLost(f"{self.url}: creating the subscription failed: {_translate(e, self.url)}") from e

    async def _create_items(self, sub_id: int, reqs: list) -> list:
        p = ua.CreateMonitoredItemsParameters(SubscriptionId=sub_id, TimestampsToReturn=ua.TimestampsToReturn.Both,
                                              ItemsToCreate=reqs)
        return await self._client.uaclient.create_monitored_items(p)

    @staticmethod
    def _item_request(handle: int, it: ItemSpec, *, with_filter: bool):
        mp = ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=it.sampling_interval, QueueSize=it.queue_size,
                                     DiscardOldest=True)
        if with_filter and it.deadband > 0:
            mp.Filter = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValue,
                                            DeadbandType=ua.DeadbandType.Absolute, DeadbandValue=it.deadband)
        rv = ua.ReadValueId(NodeId=ua.NodeId.from_string(it.node_id), AttributeId=ua.AttributeIds.Value)
        return ua.MonitoredItemCreateRequest(ItemToMonitor=rv, MonitoringMode=ua.MonitoringMode.Reporting,
                                             RequestedParameters=mp)

    def _on_publish(self, key: Hashable, result) -> None:
        """Publish callback (runs in the client's publish loop): every response, keep-alives included, proves
        the subscription alive; data changes are queued as one entry per response."""
        self._last_publish = time.monotonic()
        self.stats.publish_responses += 1
        changes: list[Change] = []
        for n in result.NotificationMessage.NotificationData or ():
            if isinstance(n, ua.DataChangeNotification):
                for mi in n.MonitoredItems:
                    dv = mi.Value
                    value = dv.Value.Value if dv.Value is not None else None
                    status = dv.StatusCode.value if dv.StatusCode is not None else 0
                    changes.append(Change(mi.ClientHandle, value, status, to_us(dv.SourceTimestamp), to_us(dv.ServerTimestamp)))
            elif isinstance(n, ua.StatusChangeNotification) and not n.Status.is_good():
                self._lose(f"subscription ended by the server: {n.Status.name}")
        if changes:
            try:
                self._queue.put_nowait((key, changes))
            except asyncio.QueueFull:
                # Bounded memory when the sink is slower than the server: the newest response is counted and dropped.
                self.stats.dropped += len(changes)

    async def next(self, timeout: float = 1.0) -> tuple[Hashable, list[Change]] | None:
        """The next publish response with data, or None after timeout. Raises SessionLost once the queue is
        drained and the session is dead (connection lost, subscription ended, or no publish response and no
        keep-alive for three keep-alive periods)."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        if self._stale_after is not None and time.monotonic() - self._last_publish > self._stale_after:
            self._lose(f"no publish response or keep-alive for {self._stale_after:.1f} s")
        if self.lost:
            raise SessionLost(f"{self.url}: {self._lost_reason}")
        get = asyncio.ensure_future(self._queue.get())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({get, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not get.done():
                get.cancel()
        if get in done and not get.cancelled():
            return get.result()
        if self.lost and self._queue.empty():
            raise SessionLost(f"{self.url}: {self._lost_reason}")
        return None

    # -- reads and browsing ------------------------------------------------------------------------------------------
    async def read(self, node_id: str, attribute: str = "Value") -> ReadResult:
        """One Read of one attribute; a bad status is a result, not an exception."""
        try:
            nid = ua.NodeId.from_string(node_id)
        except Exception:  # noqa: BLE001
            return ReadResult(ua.StatusCodes.BadNodeIdInvalid, None, 0.0)
        params = ua.ReadParameters(NodesToRead=[ua.ReadValueId(NodeId=nid, AttributeId=getattr(ua.AttributeIds, attribute))],
                                   TimestampsToReturn=ua.TimestampsToReturn.Both)
        t0 = time.perf_counter()
        try:
            dv = (await self._client.uaclient.read(params))[0]
        except _TRANSPORT_ERRORS + (ua.UaError,) as e:
            raise SessionLost(str(_translate(e, self.url))) from e
        dt = time.perf_counter() - t0
        value = dv.Value.Value if dv.Value is not None else None
        return ReadResult(dv.StatusCode.value if dv.StatusCode is not None else 0, value, dt)

    async def history(self, node_id: str, start_us: int, end_us: int, max_values: int = 10_000) -> list[Change] | None:
        """The values a node's history holds in (start_us, end_us] (HistoryRead of raw data), oldest first, or
        None when the node is not historized or the server offers no history for it."""
        r = await self.read(node_id, "Historizing")
        if not (ua.StatusCode(r.status).is_good() and r.value is True):
            return None
        node = self._client.get_node(node_id)
        start = _EPOCH + timedelta(microseconds=start_us + 1)
        end = _EPOCH + timedelta(microseconds=end_us)
        try:
            dvs = await asyncio.wait_for(node.read_raw_history(starttime=start, endtime=end, numvalues=max_values), self.timeout)
        except ua.UaStatusCodeError:
            return None  # e.g. BadHistoryOperationUnsupported: the node says historizing, the server cannot serve it
        except _TRANSPORT_ERRORS + (ua.UaError,) as e:
            raise SessionLost(str(_translate(e, self.url))) from e
        out = []
        for dv in dvs:
            out.append(Change(-1, dv.Value.Value if dv.Value is not None else None,
                              dv.StatusCode.value if dv.StatusCode is not None else 0, to_us(dv.SourceTimestamp), to_us(dv.ServerTimestamp)))
        out.sort(key=lambda c: c.source_us or c.server_us or 0)
        return out

    async def server_min_sampling(self) -> float | None:
        """ServerCapabilities.MinSupportedSampleRate in ms, if the server states one."""
        r = await self.read(f"i={ua.ObjectIds.Server_ServerCapabilities_MinSupportedSampleRate}")
        return float(r.value) if ua.StatusCode(r.status).is_good() and isinstance(r.value, (int, float)) else None

    def security_mode(self) -> str:
        return ua.MessageSecurityMode(self._client.security_policy.Mode).name

    async def walk(self, *, max_depth: int = 6, max_nodes: int = 2000) -> tuple[list[VariableInfo], bool]:
        """Walks the address space from Objects (skipping namespace 0, the server's own diagnostics), breadth
        first, at most max_depth levels and max_nodes nodes. Returns the variables and whether it was cut short."""
        c = self._client
        out: list[VariableInfo] = []
        seen: set = set()
        todo: list[tuple[Any, list[str], int]] = [(c.nodes.objects, [], 0)]
        visited = 0
        truncated = False
        has_prop = ua.NodeId(ua.ObjectIds.HasProperty)
        try:
            while todo:
                node, path, depth = todo.pop(0)
                refs = await node.get_children_descriptions()
                for ref in refs:
                    nid = ref.NodeId
                    if nid.NamespaceIndex == 0 or nid in seen or ref.ReferenceTypeId == has_prop:
                        continue
                    if ref.NodeClass not in (ua.NodeClass.Object, ua.NodeClass.Variable):
                        continue
                    if visited >= max_nodes:
                        truncated = True
                        break
                    seen.add(nid)
                    visited += 1
                    child = c.get_node(nid)
                    cpath = path + [ref.BrowseName.Name]
                    if ref.NodeClass == ua.NodeClass.Variable:
                        out.append(await self._variable_info(child, cpath))
                    if depth + 1 < max_depth:
                        todo.append((child, cpath, depth + 1))
                    elif ref.NodeClass == ua.NodeClass.Object:
                        truncated = True
                if truncated and visited >= max_nodes:
                    break
        except _TRANSPORT_ERRORS + (ua.UaError,) as e:
            raise SessionLost(str(_translate(e, self.url))) from e
        return out, truncated

    async def _variable_info(self, node, path: list[str]) -> VariableInfo:
        info = VariableInfo(path=path, node_id=node.nodeid.to_string(), data_type="")
        try:
            dt = await node.read_data_type()
            if dt.NamespaceIndex == 0 and isinstance(dt.Identifier, int):
                info.data_type = ua.ObjectIdNames.get(dt.Identifier, "")
            else:
                info.data_type = (await self._client.get_node(dt).read_browse_name()).Name
            info.value_rank = await node.read_value_rank()
        except ua.UaStatusCodeError:
            pass
        try:
            d = await node.read_description()
            info.description = d.Text or None
        except ua.UaStatusCodeError:
            pass
        for prop in await node.get_properties():
            name = (await prop.read_browse_name()).Name
            if name not in ("EngineeringUnits", "EURange"):
                continue
            dv = await prop.read_data_value(raise_on_bad_status=False)
            v = dv.Value.Value if dv.Value is not None else None
            if name == "EngineeringUnits" and v is not None:
                text = getattr(getattr(v, "DisplayName", None), "Text", None)
                info.unit = text or None
            elif name == "EURange" and v is not None and hasattr(v, "Low"):
                info.eu_range = (float(v.Low), float(v.High))
        return info


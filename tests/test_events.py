"""The event bus: a slow subscriber never blocks the publisher; past its bound it loses events, counted; an inline
subscriber sees every event in order; a failing handler reaches nobody."""

import threading

import pytest

from plantguard.domain.alarms import AlarmEvent, AlarmRecord
from plantguard.events import AlarmChanged, ConditionChange, ConditionsChanged, EventBus, ModelChanged
from plantguard.testing.wait import wait_for


def alarm_event(i=0):
    rec = AlarmRecord(id=f"t:{i}", tag="t", condition="HI", priority="low")
    return AlarmChanged(rec, AlarmEvent(rec.id, i, "raised"))


def test_a_stuck_subscriber_never_blocks_the_publisher_and_drops_past_its_bound():
    release = threading.Event()
    bus = EventBus()
    got = []
    bus.subscribe("stuck", lambda e: release.wait(), AlarmChanged, maxsize=5)
    bus.subscribe("fast", got.append, AlarmChanged)
    for i in range(100):
        bus.publish(alarm_event(i))  # returns at once although "stuck" handles nothing
    wait_for(lambda: len(got) == 100, "the fast subscriber")
    st = bus.stats()["stuck"]
    assert st["dropped"] >= 100 - 5 - 1 and st["queued"] <= 5
    release.set()
    bus.close()


def test_inline_subscribers_see_everything_in_order_and_types_filter():
    bus = EventBus()
    seen = []
    bus.subscribe("link", seen.append, ConditionsChanged, inline=True)
    bus.publish(ModelChanged(1, "api", "alice"))
    for i in range(50):
        bus.publish(ConditionsChanged((ConditionChange(f"a:{i}", True, i, None, ""),)))
    assert [e.changes[0].at for e in seen] == list(range(50))
    with pytest.raises(Exception):
        seen[0].changes = ()  # frozen


def test_a_failing_handler_is_counted_and_reaches_nobody():
    bus = EventBus()
    got = []

    def boom(e):
        raise RuntimeError("receiver down")

    bus.subscribe("boom", boom, inline=True)
    bus.subscribe("queued-boom", boom)
    bus.subscribe("ok", got.append)
    bus.publish(alarm_event())
    assert bus.drain(5.0) and got
    assert bus.stats()["boom"]["errors"] == 1
    wait_for(lambda: bus.stats()["queued-boom"]["errors"] == 1, "the queued failure")
    with pytest.raises(ValueError):
        bus.subscribe("ok", got.append)
    bus.close()


def test_alarm_transitions_are_published_on_the_platform_bus(tmp_path):
    from plantguard.config import parse_config
    from plantguard.domain.readings import RawBatch
    from plantguard.runtime import Platform
    from plantguard.testing.factories import plant_dict

    p = Platform(parse_config(plant_dict(1, data_dir=str(tmp_path))))
    seen = []
    p.bus.subscribe("test", seen.append, AlarmChanged, inline=True)
    tag = next(iter(p.cfg.iter_points()))[0]
    now = p.clock()
    p.pipeline.process_now(RawBatch.build([tag, tag], [now - 2_000_000, now - 1_000_000], [50.0, 95.0]))
    assert any(e.record.tag == tag and e.event.event == "raised" for e in seen), seen
    assert p.bus.stats()["alarms:conditions"]["inline"]
    p.stop()


def test_a_model_edit_is_published_with_its_actor(tmp_path):
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.testing.factories import plant_dict

    d = plant_dict(1, data_dir=str(tmp_path))
    p = Platform(parse_config(d))
    seen = []
    p.bus.subscribe("test", seen.append, ModelChanged, inline=True)
    d["sites"][0]["name"] = "renamed"
    p.replace_model(d, actor="user:ann")
    assert [(e.origin, e.actor) for e in seen] == [("api", "user:ann")] and seen[0].version >= 1
    p.stop()

"""Whoever hears the service's ``started`` record (systemd's READY=1 is sent from it) finds the
service started: `Service.has_started`, and so the startup probe, never lag behind it."""

from __future__ import annotations

from typing import ClassVar

from lifecycle.journal import Journal, Transition
from lifecycle.service import Service
from lifecycle.task import Task

WAIT = 10.0


class Quick(Task):
    LOOPLESS: ClassVar[bool] = True


def test_a_listener_of_the_started_record_finds_the_service_started() -> None:
    journal = Journal()
    service = type("Heard", (Service,), {"TASKS": (Quick,)})(journal=journal)
    seen: list[bool] = []

    def listener(record: Transition) -> None:
        if record.kind == "service" and record.trigger == "started":
            seen.append(service.has_started)

    journal.subscribe(listener)
    service.start()
    try:
        assert seen == [True]
        assert service.has_started
    finally:
        service.shutdown()
        assert service.wait(WAIT)
    assert service.has_started  # it stays true once it is


def test_a_service_that_never_started_has_not_started() -> None:
    service = type("Unheard", (Service,), {"TASKS": (Quick,)})(journal=Journal())
    assert not service.has_started

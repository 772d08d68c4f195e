"""A bound class as a typed user writes it; `tests/test_bind_typing.py` runs mypy --strict on it.

Annotations without values tell the type checker what the binding provides; they are not
attributes, so they do not clash with it.
"""

from __future__ import annotations

import enum

from lifecycle import Edge, Journal, MachineSpec, Trigger, bind, lock_of


class Light(enum.StrEnum):
    OFF = "off"
    ON = "on"


LIGHT = MachineSpec(
    name="light",
    states=Light,
    initial=Light.OFF,
    terminal=(),
    transitions=(
        Edge("switch_on", (Light.OFF,), Light.ON),
        Edge("switch_off", (Light.ON,), Light.OFF),
    ),
)


@bind(LIGHT, journal=Journal())
class Lamp:
    state: Light
    switch_on: Trigger
    switch_off: Trigger

    def __init__(self, watts: int) -> None:
        self.watts = watts

    def on_enter_on(self) -> None:
        self.watts += 0


def use(lamp: Lamp) -> Light:
    with lock_of(lamp):
        lamp.switch_on()
    lamp.switch_off(cause="bedtime")
    return lamp.state


final: Light = use(Lamp(60))

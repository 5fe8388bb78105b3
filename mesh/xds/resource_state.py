"""Per-resource subscription state, as a transition table.

    REQUESTED ──valid──▶ ACKED ──invalid──▶ NACKED (last good value kept)
        │  └──invalid──▶ NACKED               │
        └──timeout (15 s)──▶ DOES_NOT_EXIST ◀──┘ absent from an LDS/CDS response

A (state, event) pair that is not in the table raises InvalidTransition:
for instance a does-not-exist timeout for a resource that already has a value.
"""

from __future__ import annotations

from enum import Enum

from mesh.errors import InvalidTransition


class ResourceState(Enum):
    REQUESTED = "requested"
    ACKED = "acked"
    NACKED = "nacked"
    DOES_NOT_EXIST = "does_not_exist"


class ResourceEvent(Enum):
    VALID = "valid"
    INVALID = "invalid"
    # Missing from a state-of-the-world response of a type where that means deletion.
    ABSENT = "absent"
    TIMEOUT = "timeout"


_S = ResourceState
_E = ResourceEvent

TRANSITIONS: dict[tuple[ResourceState, ResourceEvent], ResourceState] = {
    (_S.REQUESTED, _E.VALID): _S.ACKED,
    (_S.REQUESTED, _E.INVALID): _S.NACKED,
    (_S.REQUESTED, _E.TIMEOUT): _S.DOES_NOT_EXIST,
    # Never received: absence says nothing yet, the timer decides (as gRPC does).
    (_S.REQUESTED, _E.ABSENT): _S.REQUESTED,
    (_S.ACKED, _E.VALID): _S.ACKED,
    (_S.ACKED, _E.INVALID): _S.NACKED,
    (_S.ACKED, _E.ABSENT): _S.DOES_NOT_EXIST,
    (_S.NACKED, _E.VALID): _S.ACKED,
    (_S.NACKED, _E.INVALID): _S.NACKED,
    (_S.NACKED, _E.ABSENT): _S.DOES_NOT_EXIST,
    (_S.DOES_NOT_EXIST, _E.VALID): _S.ACKED,
    (_S.DOES_NOT_EXIST, _E.INVALID): _S.NACKED,
    (_S.DOES_NOT_EXIST, _E.ABSENT): _S.DOES_NOT_EXIST,
}


def transition(state: ResourceState, event: ResourceEvent) -> ResourceState:
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise InvalidTransition(f"no transition from {state.value} on {event.value}") from None

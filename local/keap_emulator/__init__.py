"""Keap ContactService emulator: XML-RPC over HTTP on 127.0.0.1 backed by SQLite, for tests and local runs."""

from keap_emulator.exceptions import KeapFault
from keap_emulator.faults import ContactFault, FaultPlan, HoldPlan
from keap_emulator.model import ContactServiceModel
from keap_emulator.quotas import QuotaPlan
from keap_emulator.server import EmulatorServer
from keap_emulator.world import World, WorldError, load_world

__all__ = [
    "ContactFault",
    "ContactServiceModel",
    "EmulatorServer",
    "FaultPlan",
    "HoldPlan",
    "KeapFault",
    "QuotaPlan",
    "World",
    "WorldError",
    "load_world",
]

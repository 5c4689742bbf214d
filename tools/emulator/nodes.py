"""The emulated nodes' Corda ports: every running instance of every scale set listens on TCP, on
127.0.0.1, one port per Corda port (p2p, RPC), so the control plane's TCP probe has something real to
connect to.

Azure gives each node an address of its own (its NIC's private IP) and the same Corda ports on each;
here every node shares 127.0.0.1, so each (instance, Corda port) gets a port of its own, picked from
the free ports when it first opens and reused when it opens again (a restart, an emulator restart),
unless something else has taken it meanwhile. The mapping is published as the NIC tag ``corda-ports``
(``10002=41234,10003=41235``; see ``compute.py``), which the ScaleSets adapter reads.

A node's ports follow its state, reconciled every ``TICK`` seconds and at once after any change:
- open only while it serves: booted, not restarting, no fault (a restart closes them, and every
  connection with them, and opens them again once the node is back);
- ``crashed``/``broken`` (ARM unhealthy) and ``port_closed`` (ARM healthy; all ports, or only those
  named) close them: a connection is refused;
- ``hung`` (ARM healthy) keeps them bound with a full backlog that is never accepted, as a hung JVM
  does: a connection times out;
- an instance removed by scale-in closes them for good.
Accepted connections are closed at once: the probe only needs the handshake.
"""

from __future__ import annotations

import contextlib
import random
import selectors
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from .compute import CORDA_PORTS, NODE_ADDRESS, Compute

HOST = NODE_ADDRESS
TICK = 0.1
#: Where the nodes' ports are drawn from: below Linux's ephemeral range (32768-60999), where the
#: stacks of the tests and benches pick their hosts' ports by binding port 0 and releasing it. A node
#: bound to port 0 could take one of those in the meantime (seen: a bench's host could not start,
#: "port already in use", the emulator's node had it).
NODE_PORTS = range(20000, 30000)


@dataclass
class Listener:
    sock: socket.socket
    hung: bool
    generation: tuple[float, float]
    #: Connections that fill a hung listener's backlog (held so the kernel accepts no more).
    fillers: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        for s in (*self.fillers, self.sock):
            with contextlib.suppress(OSError):
                s.close()


class NodePorts:
    def __init__(self, compute: Compute, corda_ports: tuple[int, ...] = CORDA_PORTS):
        if not corda_ports:
            raise ValueError("at least one Corda port is needed")
        self.compute, self.corda_ports = compute, corda_ports
        self.compute.corda_ports = corda_ports
        self.listeners: dict[tuple[str, str, int], Listener] = {}
        self.selector = selectors.DefaultSelector()
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="node-ports", daemon=True)
        compute.on_change = self.wake.set

    def start(self) -> NodePorts:
        self.reconcile()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        for key in list(self.listeners):
            self._close(key)

    # -- the loop ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self.stopped.is_set():
            for key, _ in self.selector.select(timeout=TICK) if self.selector.get_map() else []:
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    conn.close()
                except OSError:
                    pass  # the listener was closed under us, or the peer gave up: nothing to serve
            if not self.selector.get_map():
                self.wake.wait(TICK)
            self.wake.clear()
            self.reconcile()

    def reconcile(self) -> None:
        """Open, close or hang every node's ports as its state asks."""
        wanted: dict[tuple[str, str, int], tuple[bool, tuple[float, float]]] = {}
        with self.compute.state.lock:
            changed = False
            for set_key, vmss in self.compute.sets.items():
                for instance in vmss["instances"]:
                    for port in self._open_ports(instance):
                        wanted[(set_key, instance["id"], port)] = (
                            instance.get("fault") == "hung",
                            (float(instance["created"]), float(instance.get("restarting_until", 0))),
                        )
            for key in [
                k for k, listener in self.listeners.items() if (listener.hung, listener.generation) != wanted.get(k)
            ]:
                self._close(key)
            for key, (hung, generation) in wanted.items():
                if key not in self.listeners:
                    changed |= self._open(key, hung, generation)
            if changed:
                self.compute.state.save("compute")

    def _open_ports(self, instance: dict[str, Any]) -> list[int]:
        fault = instance.get("fault")
        if fault in ("crashed", "broken") or self.compute.health(instance) != "HealthState/healthy":
            return []
        if fault == "port_closed":
            closed = instance.get("closed_ports") or list(self.corda_ports)
            return [p for p in self.corda_ports if p not in closed]
        return list(self.corda_ports)

    # -- sockets -------------------------------------------------------------------------------------
    def _open(self, key: tuple[str, str, int], hung: bool, generation: tuple[float, float]) -> bool:
        """Listen for one (instance, Corda port); True when its port changed (the state must be saved)."""
        set_key, instance_id, corda_port = key
        instance = next(i for i in self.compute.sets[set_key]["instances"] if i["id"] == instance_id)
        ports: dict[str, int] = instance.setdefault("ports", {})
        previous = ports.get(str(corda_port), 0)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _bind(sock, previous)
        listener = Listener(sock, hung, generation)
        if hung:
            sock.listen(0)
            self._fill(listener)
        else:
            sock.listen(64)
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
        self.listeners[key] = listener
        port = int(sock.getsockname()[1])
        ports[str(corda_port)] = port
        return port != previous

    def _fill(self, listener: Listener) -> None:
        """Connect to the never-accepting listener until the kernel takes no more: later connects time out."""
        address = listener.sock.getsockname()
        for _ in range(8):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.2)
            try:
                filler.connect(address)
            except OSError:
                filler.close()
                return
            listener.fillers.append(filler)

    def _close(self, key: tuple[str, str, int]) -> None:
        listener = self.listeners.pop(key)
        if not listener.hung:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(listener.sock)
        listener.close()


def _bind(sock: socket.socket, previous: int) -> None:
    """The node's port as before (0: none yet), else a free one of ``NODE_PORTS`` (published through
    the NIC tag), else any the OS gives."""
    drawn = random.sample(NODE_PORTS, 32)  # a port to listen on, not a secret  # nosec B311
    for port in [previous, *drawn] if previous else drawn:
        with contextlib.suppress(OSError):
            sock.bind((HOST, port))
            return
    sock.bind((HOST, 0))

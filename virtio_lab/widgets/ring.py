"""RingExplorer: the device at work, step by step — post another request, resize the queue."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ..errors import VirtioLabError
from ..guest.queue import QueueRun, queue
from ..views._common import style_tag
from ..views.ring import interrupt_path_html, memory_map_html, ring_html

__all__ = ["RingExplorer", "QUEUE_SIZES"]

#: the queue-size property a learner may change, per device: virtio-rng's queue is fixed at 8
#: (virtio_rng_device_realize), virtio-blk takes queue-size (a power of 2 above 2), virtio-net
#: tx_queue_size (a power of 2 from 256 to 1024)
QUEUE_SIZES = {"virtio-blk-pci": ("queue-size", (4, 8, 16, 32, 64, 128, 256)),
               "virtio-net-pci": ("tx_queue_size", (256, 512, 1024))}


def _base(spec: str) -> str:
    return spec.split(",", 1)[0].replace("-non-transitional", "").replace("-transitional", "")


class RingExplorer(w.VBox):
    """Step through the requests of a :func:`~virtio_lab.guest.queue.queue` run.

    ◀ / ▶ and the slider move over the requests' events (the probe's come before them);
    "post a request" makes one more (the trace grows, the slider with it); the queue-size
    picker plugs the device again with that size and replays as many requests, so the ring
    wraps sooner. The views are :mod:`virtio_lab.views.ring`'s.
    """

    def __init__(self, spec: Any = "virtio-blk-pci,queue-size=4", machine: str = "pc",
                 root_port: bool = False, requests: int = 3, **kwargs):
        self.run = spec if isinstance(spec, QueueRun) else queue(spec, machine, root_port, requests)
        self.machine, self.root_port = machine, root_port
        self.prev_button = w.Button(description="◀", tooltip="previous step", layout=w.Layout(width="44px"))
        self.next_button = w.Button(description="▶", tooltip="next step", layout=w.Layout(width="44px"))
        self.slider = w.IntSlider(description="step", continuous_update=True, layout=w.Layout(width="420px"))
        self.post_button = w.Button(description="post a request", tooltip="the driver makes one more request")
        self.jump = w.Dropdown(description="request", layout=w.Layout(width="220px"))
        size_prop = QUEUE_SIZES.get(_base(self.run.spec))
        self.size = w.Dropdown(options=size_prop[1] if size_prop else (self.run.vqs[0].num,),
                               value=self._current_size(size_prop), description="queue size",
                               disabled=size_prop is None, layout=w.Layout(width="200px"))
        self.message = w.HTML()
        self.ring = w.HTML()
        self.path = w.HTML()
        self.memory = w.HTML()
        self.prev_button.on_click(lambda _: self.go(self.step - 1))
        self.next_button.on_click(lambda _: self.go(self.step + 1))
        self.post_button.on_click(lambda _: self.post())
        self.slider.observe(lambda c: self._render(), names="value")
        self.jump.observe(self._on_jump, names="value")
        self.size.observe(self._on_size, names="value")
        tabs = w.Tab(children=[self.path, self.memory])
        for i, t in enumerate(("interrupt path", "guest memory")):
            tabs.set_title(i, t)
        super().__init__([w.HBox([self.prev_button, self.slider, self.next_button]),
                          w.HBox([self.jump, self.post_button, self.size]), self.message,
                          w.HTML(style_tag()), self.ring, tabs], **kwargs)
        self.add_class("vl-ring-explorer")
        self._reset_range(last=True)

    # -- state -------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.slider.value

    def go(self, step: int) -> None:
        if isinstance(step, bool) or not isinstance(step, int):
            raise VirtioLabError(f"a step is an event index (an integer), not {type(step).__name__}")
        self.slider.value = min(max(step, self.slider.min), self.slider.max)

    def post(self) -> None:
        """One more request of the device's kind; show where it ends."""
        self.run.post(1)
        self._reset_range(last=True)

    def _current_size(self, size_prop) -> int:
        if size_prop is None:
            return self.run.vqs[0].num
        value = self.run.device.trace.spec.value(size_prop[0])
        return value if value in size_prop[1] else size_prop[1][-1]

    def _on_size(self, change) -> None:
        prop = QUEUE_SIZES.get(_base(self.run.spec))
        if prop is None or change["new"] == change["old"]:
            return
        opts = [o for o in self.run.spec.split(",")[1:] if not o.startswith(prop[0] + "=")]
        spec = ",".join([self.run.spec.split(",", 1)[0]] + opts + [f"{prop[0]}={change['new']}"])
        try:
            self.run = queue(spec, self.machine, self.root_port, len(self.run.requests))
        except VirtioLabError as err:
            self.message.value = f"<div class='vl vl-err'>{err}</div>"
            return
        self.message.value = ""
        self._reset_range(last=True)

    def _on_jump(self, change) -> None:
        if change["new"] is not None:
            self.go(change["new"])

    def _reset_range(self, last: bool = False) -> None:
        reqs = self.run.requests
        n = len(self.run.trace.events)
        first = reqs[0].first_event if reqs else n - 1
        self.slider.min, self.slider.max = 0, n - 1
        self.slider.min = first
        self.jump.options = [(f"{r.number}: {r.kind} (step {r.first_event})", r.first_event) for r in reqs]
        self.jump.value = None
        if last:
            self.slider.value = n - 1
        self._render()

    def _render(self) -> None:
        i = self.step
        self.prev_button.disabled = i <= self.slider.min
        self.next_button.disabled = i >= self.slider.max
        req = next((r for r in self.run.requests if r.first_event <= i <= r.last_event), None)
        queue_index = req.queue if req is not None else None
        self.ring.value = ring_html(self.run, i, queue_index, css=False)
        self.path.value = interrupt_path_html(self.run, req.number if req else None, css=False)
        self.memory.value = memory_map_html(self.run, i, css=False)

"""virtio-blk's device side: requests of header, data and status on a disk image
(hw/block/virtio-blk.c).

A request is one descriptor chain: a 16-byte ``struct virtio_blk_outhdr`` the device
reads (``type`` 4 bytes: VIRTIO_BLK_T_IN 0 read, _OUT 1 write, _FLUSH 4, _GET_ID 8;
``ioprio`` 4; ``sector`` 8, in 512-byte units), the data buffers (device-writable for a
read, readable for a write), and one device-writable status byte (OK 0, IOERR 1,
UNSUPP 2) at the very end. ``virtio_blk_handle_output`` → ``virtio_blk_handle_vq``
pops every available request (notifications off meanwhile, when they were on),
``virtio_blk_handle_request`` parses it, reads and writes go to the block layer
(``blk_aio_preadv`` / ``blk_aio_pwritev``) and complete later in QEMU's main loop
(``virtio_blk_rw_complete`` → ``virtio_blk_req_complete``: status byte, push with the
number of device-writable bytes, notify). Requests queued in one pass in the same
direction are merged when their sectors are adjacent (``virtio_blk_submit_multireq``,
sorted by sector); separate submissions complete here in submission order (on a real
host, the thread pool may finish them in any order).

The disk is a byte array the learner can read: by default the 1 MiB raw image the
queue replay gives a real QEMU (byte i is i mod 251). Discard, write-zeroes and SCSI
passthrough are refused with one line (not modelled).
"""

from __future__ import annotations

from ..errors import VirtioLabError
from . import virtqueue as vqm
from .devices import NULL_CO_SECTORS

__all__ = ["VirtIOBlock", "default_disk", "BLK_T_IN", "BLK_T_OUT", "BLK_T_FLUSH", "BLK_T_GET_ID",
           "STATUS_NAMES"]

BLK = "hw/block/virtio-blk.c"
SECTOR = 512
BLK_T_IN, BLK_T_OUT, BLK_T_SCSI_CMD, BLK_T_FLUSH, BLK_T_GET_ID = 0, 1, 2, 4, 8
BLK_T_DISCARD, BLK_T_WRITE_ZEROES, BLK_T_BARRIER = 11, 13, 0x80000000
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2
STATUS_NAMES = {S_OK: "VIRTIO_BLK_S_OK", S_IOERR: "VIRTIO_BLK_S_IOERR", S_UNSUPP: "VIRTIO_BLK_S_UNSUPP"}
TYPE_NAMES = {BLK_T_IN: "VIRTIO_BLK_T_IN (read)", BLK_T_OUT: "VIRTIO_BLK_T_OUT (write)",
              BLK_T_FLUSH: "VIRTIO_BLK_T_FLUSH", BLK_T_GET_ID: "VIRTIO_BLK_T_GET_ID",
              BLK_T_SCSI_CMD: "VIRTIO_BLK_T_SCSI_CMD"}
BDRV_REQUEST_MAX_SECTORS = (0x7FFFFFFF & ~511) // SECTOR  # MIN(SIZE_MAX, INT_MAX) >> 9, rounded
MAX_MERGE_REQS = 32
DEFAULT_DISK_SIZE = 1 << 20


def default_disk(size: int = DEFAULT_DISK_SIZE) -> bytearray:
    """The replay's default image: byte i holds i mod 251 (251 is prime, so no two
    sectors look alike)."""
    return bytearray((bytes(range(251)) * (size // 251 + 1))[:size])


class _Request:
    """A VirtIOBlockReq: the element, its parsed header, data pieces and status location."""

    def __init__(self, elem):
        self.elem = elem
        self.type = 0
        self.sector = 0
        self.data: list = []  # the qiov: data pieces (MapPiece)
        self.status_at = None  # (MapPiece, offset): where the status byte goes
        self.in_len = 0

    @property
    def size(self) -> int:
        return sum(p.length for p in self.data)


class VirtIOBlock:
    """The virtio-blk-device behind the proxy: one request queue per num-queues."""

    name = "virtio-blk"

    def __init__(self, dev, spec, disk: bytearray | None = None):
        self.dev = dev
        self.disk = disk  # None: the null-co drive of a plain plug (1 GiB, no data kept)
        self.initial = bytes(disk) if disk is not None else None  # the image before any request
        if disk is not None and len(disk) % SECTOR:
            raise VirtioLabError(f"a disk image is a whole number of 512-byte sectors; "
                                 f"this one has {len(disk)} bytes")
        self.logical = spec.value("logical_block_size") or SECTOR
        self.sector_mask = self.logical // SECTOR - 1
        self.serial = spec.value("serial") or ""
        self.merging = bool(spec.value("request-merging"))
        self.scsi = bool(spec.value("scsi")) if spec.value("scsi") is not None else False
        self.handlers = tuple("virtio_blk_handle_output" for _ in dev.vdev.queues)

    @property
    def total_sectors(self) -> int:
        return NULL_CO_SECTORS if self.disk is None else len(self.disk) // SECTOR

    def set_status(self, status: int) -> None:
        self.dev.vdev.status = status

    def reset(self) -> None:
        pass

    # ------------------------------------------------------------ the queue
    def handle_output(self, n: int) -> None:
        """virtio_blk_handle_output → virtio_blk_handle_vq."""
        dev = self.dev
        vq = dev.vdev.queues[n]
        with dev.call("virtio_blk_handle_output", BLK,
                      f"virtio-blk's handler for queue {n}: virtio_blk_handle_vq pops every available "
                      f"request, with notifications off while it works (if they were on)."):
            suppress = vq.notification
            mrb: list[_Request] = []
            while True:
                if suppress:
                    dev.set_notification(vq, False)
                while True:
                    elem = dev.virtqueue_pop(vq)
                    if elem is None:
                        break
                    req = _Request(elem)
                    if self.handle_request(vq, req, mrb):
                        dev.virtqueue_detach(vq, elem)
                        break
                if suppress:
                    dev.set_notification(vq, True)
                if vqm.queue_empty(dev, vq):
                    break
            if mrb:
                self.submit_multireq(vq, mrb)

    def handle_request(self, vq, req: _Request, mrb: list) -> bool:
        """virtio_blk_handle_request: parse header and status; True on a virtio_error."""
        dev = self.dev
        elem = req.elem
        with dev.call("virtio_blk_handle_request", BLK,
                      f"Request with head {elem.index}: read the 16-byte header from the first "
                      f"readable bytes, find the status byte at the end of the writable ones."):
            if not elem.out_sg or not elem.in_sg:
                dev.virtio_error("virtio-blk missing headers")
                return True
            hdr = dev.iov_to_buf(elem.out_sg, 0, 16)
            if len(hdr) != 16:
                dev.virtio_error("virtio-blk request outhdr too short")
                return True
            out_rest = _discard_front(elem.out_sg, 16)
            last = elem.in_sg[-1]
            req.in_len = elem.in_len
            req.status_at = last.addr + last.length - 1, last.bounced
            in_rest = _discard_back(elem.in_sg, 1)
            req.type = int.from_bytes(hdr[0:4], "little")
            ioprio = int.from_bytes(hdr[4:8], "little")
            sector = int.from_bytes(hdr[8:16], "little")
            kind = req.type & ~(BLK_T_OUT | BLK_T_BARRIER)
            dev.phase(f"Header: type {req.type} ({TYPE_NAMES.get(req.type & ~BLK_T_BARRIER, 'unknown')}), "
                      f"ioprio {ioprio}, sector {sector}; {req.in_len} device-writable byte(s), the "
                      f"status byte at 0x{req.status_at[0]:x}.", type=req.type, sector=sector)
            if kind == BLK_T_IN:
                is_write = bool(req.type & BLK_T_OUT)
                req.sector = sector
                req.data = out_rest if is_write else in_rest
                if not self.sect_range_ok(sector, req.size):
                    dev.phase(f"virtio_blk_sect_range_ok: {req.size} bytes at sector {sector} do not "
                              f"fit the {self.total_sectors}-sector disk (or are not whole "
                              f"{self.logical}-byte blocks): VIRTIO_BLK_S_IOERR at once.")
                    self.req_complete(vq, req, S_IOERR)
                    return False
                if mrb and (len(mrb) == MAX_MERGE_REQS or is_write != _is_write(mrb[0])
                            or not self.merging):
                    self.submit_multireq(vq, mrb)
                mrb.append(req)
                return False
            if kind == BLK_T_FLUSH:
                dev.phase("A flush: blk_aio_flush, completed from the main loop.")
                dev.defer(lambda: self.req_complete(vq, req, S_OK, "virtio_blk_flush_complete"))
                return False
            if kind == BLK_T_GET_ID:
                ident = self.serial.encode() + b"\0"
                size = min(len(ident), sum(p.length for p in in_rest), 20)  # VIRTIO_BLK_ID_BYTES
                dev.iov_from_buf(in_rest, 0, ident[:size], "the serial number")
                self.req_complete(vq, req, S_OK)
                return False
            if kind == BLK_T_SCSI_CMD:
                if len(elem.out_sg) < 2 or len(elem.in_sg) < 3:
                    self.req_complete(vq, req, S_IOERR)
                    return False
                if not self.scsi:
                    errors = elem.in_sg[-2]
                    dev.iov_from_buf([errors], 0, (255).to_bytes(4, "little"), "scsi->errors")
                    self.req_complete(vq, req, S_UNSUPP)
                    return False
                raise VirtioLabError("virtio-blk SCSI passthrough (scsi=on) is not modelled")
            if kind in (BLK_T_DISCARD & ~BLK_T_OUT, BLK_T_WRITE_ZEROES & ~BLK_T_OUT):
                raise VirtioLabError("virtio-blk discard and write-zeroes requests are not modelled: "
                                     "use VIRTIO_BLK_T_IN (0), _OUT (1), _FLUSH (4) or _GET_ID (8)")
            dev.phase(f"Type {req.type} is no request virtio-blk knows: VIRTIO_BLK_S_UNSUPP.")
            self.req_complete(vq, req, S_UNSUPP)
            return False

    def sect_range_ok(self, sector: int, size: int) -> bool:
        """virtio_blk_sect_range_ok: whole logical blocks, aligned, inside the disk."""
        nb = size >> 9
        if nb > BDRV_REQUEST_MAX_SECTORS or sector & self.sector_mask or size % self.logical:
            return False
        return not (sector > self.total_sectors or nb > self.total_sectors - sector)

    def submit_multireq(self, vq, mrb: list[_Request]) -> None:
        """virtio_blk_submit_multireq: one block-layer request per run of adjacent sectors."""
        dev = self.dev
        reqs = list(mrb)
        mrb.clear()
        if len(reqs) > 1:
            reqs.sort(key=lambda r: r.sector)
        runs: list[list[_Request]] = []
        for r in reqs:
            if runs and runs[-1][-1].sector + runs[-1][-1].size // SECTOR == r.sector and len(reqs) > 1:
                runs[-1].append(r)
            else:
                runs.append([r])
        for run in runs:
            write = _is_write(run[0])
            total = sum(r.size for r in run)
            with dev.call("submit_requests", BLK,
                          f"{'blk_aio_pwritev' if write else 'blk_aio_preadv'}: {total} bytes at sector "
                          f"{run[0].sector} ({len(run)} request{'s' if len(run) > 1 else ''}); the "
                          f"block layer completes it later, in QEMU's main loop.",
                          sector=run[0].sector, bytes=total, write=write):
                dev.defer(lambda run=run: self.rw_complete(vq, run))

    def rw_complete(self, vq, run: list[_Request]) -> None:
        """virtio_blk_rw_complete: the data moved; complete each request with OK."""
        dev = self.dev
        with dev.call("virtio_blk_rw_complete", BLK,
                      "The block layer finished: the data is in place (the guest's buffer for a "
                      "read, the image for a write); complete each merged request.",
                      sector=run[0].sector):
            for req in run:
                start = req.sector * SECTOR
                if self.disk is None:
                    dev.phase("The drive is null-co: a read leaves the buffer as it was "
                              "(read-zeroes=off), a write is thrown away.")
                elif _is_write(req):
                    data = dev.iov_to_buf(req.data, 0, req.size)
                    self.disk[start:start + len(data)] = data
                    dev.phase(f"{len(data)} bytes written to the image at byte 0x{start:x} "
                              f"(sector {req.sector}).", disk_offset=start, length=len(data))
                else:
                    dev.iov_from_buf(req.data, 0, bytes(self.disk[start:start + req.size]),
                                     f"sector {req.sector} of the image")
                self.req_complete(vq, req, S_OK)

    def req_complete(self, vq, req: _Request, status: int, fn: str = "virtio_blk_req_complete") -> None:
        """virtio_blk_req_complete: the status byte, push with in_len, virtio_notify."""
        dev = self.dev
        with dev.call(fn, BLK, f"Complete the request (head {req.elem.index}): status byte "
                      f"{status} ({STATUS_NAMES[status]}), push it with len {req.in_len} (every "
                      f"device-writable byte: data plus status), notify.", status=status):
            addr, bounced = req.status_at
            if not bounced:
                dev.store(addr, bytes([status]))
            dev.virtqueue_push(vq, req.elem, req.in_len)
            dev.virtio_notify(vq)


def _is_write(req: _Request) -> bool:
    return bool(req.type & BLK_T_OUT)


def _discard_front(pieces: list, n: int) -> list:
    """iov_discard_front: the pieces after the first ``n`` bytes."""
    out = []
    for p in pieces:
        if n >= p.length:
            n -= p.length
            continue
        out.append(type(p)(p.addr + n, p.length - n, p.bounced))
        n = 0
    return out


def _discard_back(pieces: list, n: int) -> list:
    """iov_discard_back: the pieces without their last ``n`` bytes."""
    out = list(pieces)
    while n and out:
        last = out.pop()
        if last.length > n:
            out.append(type(last)(last.addr, last.length - n, last.bounced))
            n = 0
        else:
            n -= last.length
    return out

"""Capture what a real QEMU 7.2 answers to the edge cases of -device parsing (issue 14,
item 8: QEMU's order of checks), for tests/test_crosscheck.py.

Each case is plugged into ``qemu-system-x86_64`` by virtio_lab's qtest probe (the truth
side, :mod:`virtio_lab.live.qemu`) and kept as the probe reads it: the refusal QEMU printed,
or the device's config space, write mask, BARs, ROM size and virtio registers. Run from the
checkout root: ``.venv/bin/python tests/data/qemu-7.2-edges/capture.py`` (it works in its own
folder, where rom-3000.bin is the ROM file the romfile= cases name)."""
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NINES = "9" * 5000  # past Python's 4300-digit int-string limit

CASES = [
    # failover_pair_id: hw/pci/pci.c pci_qdev_realize, after the class realize
    ("virtio-net-pci,failover_pair_id=x", "pc", False),
    ("virtio-net-pci,failover_pair_id=", "pc", False),
    ("virtio-net-pci,failover_pair_id=x", "q35", False),
    ("virtio-net-pci,failover_pair_id=x", "q35", True),
    ("virtio-blk-pci,drive=d0,failover_pair_id=x", "q35", False),
    ("virtio-net-pci,failover_pair_id=x,addr=03.1", "q35", False),
    ("virtio-net-pci,failover_pair_id=x,multifunction=on", "q35", False),
    ("virtio-net-pci,vectors=-1,failover_pair_id=x", "pc", False),
    # id=: qemu_opts_create checks it first (the first id= counts)
    ("virtio-net-pci,id=9x", "pc", False),
    ("virtio-net-pci,id=", "pc", False),
    ("virtio-net-pci,id=\u00e9", "pc", False),
    ("virtio-net-pci,id=x,id=9x", "pc", False),
    ("virtio-net-pci,id=9x,id=x", "pc", False),
    ("virtio-net-pci,id=9,driver=zz", "pc", False),
    ("virtio-net-pci,id=a-b.c_9", "pc", False),
    ("virtio-net-pci,id=rp0", "q35", True),
    # bus= is resolved before any property is set
    ("virtio-net-pci,bus=zz,vectors=-1", "pc", False),
    ("virtio-net-pci,bus=pci.0,bus=zz", "pc", False),
    ("zzz,bus=zz", "pc", False),
    # the driver: the implied first option, or the last driver= (qemu_opts_to_qdict)
    ("a=b", "pc", False),
    (",virtio-net-pci", "pc", False),
    ("driver=virtio-net-pci,vectors=1", "pc", False),
    ("virtio-net-pci,driver=virtio-blk-pci", "pc", False),
    ("virtio-net-pci,driver=zzz", "pc", False),
    ("virtio-blk-pci,drive=d0,driver=virtio-rng-pci", "pc", False),
    (" virtio-net-pci", "pc", False),
    ("virtio-net-pci ", "pc", False),
    # aliases (qdev_alias_table)
    ("virtio-net", "pc", False),
    ("virtio-blk,drive=d0", "q35", False),
    ("virtio-rng", "q35", True),
    # a user's addr= stands: the device is read where it put it (issue 14, item 1)
    ("virtio-net-pci,addr=05.0", "pc", False),
    ("virtio-net-pci,addr=0x1e", "q35", False),
    ("virtio-rng-pci,addr=00.0", "q35", True),
    ("virtio-net-pci,addr=05.0,", "pc", False),
    # commas and flags (util/qemu-option.c: get_opt_name_value)
    ("virtio-net-pci,", "pc", False),
    ("virtio-net-pci,,", "pc", False),
    ("virtio-net-pci,vectors=2,", "pc", False),
    ("virtio-net-pci,vectors=2,,", "pc", False),
    ("virtio-net-pci,nomq", "pc", False),
    ("virtio-net-pci,mq", "pc", False),
    ("virtio-net-pci,mq,,vectors=2", "pc", False),
    ("virtio-net-pci,no", "pc", False),
    ("virtio-net-pci,nodisable-legacy", "q35", False),
    # romfile=: any readable file is a ROM (softmmu/datadir.c: qemu_find_file)
    ("virtio-net-pci,romfile=rom-3000.bin", "pc", False),
    ("virtio-net-pci,romfile=rom-3000.bin,romsize=2048", "pc", False),
    ("virtio-net-pci,romfile=/dev/null", "pc", False),
    ("virtio-net-pci,romfile=no-such.rom", "pc", False),
    ("virtio-net-pci,romfile=efi-virtio.rom", "q35", False),
    # numbers past Python's int-string limit, bytes that are not UTF-8
    ("virtio-net-pci,vectors=" + NINES, "pc", False),
    ("virtio-mem-pci,memdev=mem0,block-size=" + NINES, "pc", False),
    ("virtio-net-pci,vectors=0" + "0" * 5000 + "1", "pc", False),
    ("virtio-net-pci,vectors=99999999999999999999", "pc", False),
    ("virtio-net-pci,vectors=-18446744073709551615", "pc", False),
    ("virtio-net-pci,bootindex=9999999999", "pc", False),
    ("virtio-net-pci,bootindex=-9223372036854775809", "pc", False),
    ("virtio-net-pci,\udcff=1", "pc", False),
    ("virtio-net-pci,mac=\udcff", "pc", False),
    ("virtio-blk-pci,drive=d0,serial=\udcff\x1b[31m", "pc", False),
]

KEEP = ("device", "machine", "root_port", "error", "config", "config_ext", "wmask", "bars",
        "rom_size", "caps", "common_cfg", "device_cfg", "legacy")


def main() -> None:
    sys.path.insert(0, str(HERE.parent.parent.parent))
    from virtio_lab.files import write_atomic
    from virtio_lab.live import qemu
    os.chdir(HERE)
    out = {"qemu": qemu.qemu_version(), "cases": []}
    for spec, machine, root_port in CASES:
        got = qemu.probe(spec, machine, root_port, lspci=False)
        out["cases"].append({k: got[k] for k in KEEP if k in got})
    write_atomic(HERE / "cases.json", json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

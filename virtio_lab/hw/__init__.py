"""QEMU's side of the plug, as hw/virtio/, hw/i386/ and hw/core/ have it: the virtio-pci
proxy, the device models and their config layouts, the machines and boards, ``-device``
parsing, the plug itself and the state it leaves, and how the device answers guest accesses."""

"""virtio_lab: step through how QEMU 7.2 plugs a virtio-pci device, byte for byte."""

__version__ = "0.1.0"

"""PCI machinery, as QEMU's hw/pci/ has it: config space and its one write rule,
capabilities, BARs, MSI-X, PCI Express, the names of config-space bytes, a guest's
config accesses and sanity checks. Knows nothing of virtio devices or machines."""

"""Everything that starts a real QEMU: the qtest probe, the live cross-check, the
real-guest runner and the guest kit it boots."""

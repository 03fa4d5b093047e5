"""The guest's side, replayed on a plugged device: SeaBIOS placing the BARs, the Linux
driver probing the device and negotiating features, and ``probe`` which runs both."""

"""Precision profiling of a synthesized network: value ranges against the chosen
fixed-point types, overflow/underflow counts measured by the emulator, a suggested
type per layer, ROC curves and accuracy of the float model against the firmware.

``fpgaflow profile`` drives it (``profile.profile_project``); ``roc`` and ``ranges``
hold the numbers, ``plots`` and ``report`` the output."""

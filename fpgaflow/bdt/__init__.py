"""Boosted decision trees to firmware with conifer: model loading and conversion (with
our own xgboost and scikit-learn converters where conifer's go wrong), the HLS or VHDL
project, the emulator manifest, reports, verification against conifer's C++ backend
and a GHDL simulation of the VHDL, and open-source synthesis with GHDL + yosys.

Heavy libraries (conifer, xgboost, scikit-learn) are imported inside functions.
"""

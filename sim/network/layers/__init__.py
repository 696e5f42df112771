"""Layer families of the network emulator, one module each (see ``sim.network.registry``)."""
